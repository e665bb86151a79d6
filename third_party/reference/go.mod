module github.com/distribution/reference

go 1.22
