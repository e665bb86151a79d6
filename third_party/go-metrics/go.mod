module github.com/docker/go-metrics

go 1.22
