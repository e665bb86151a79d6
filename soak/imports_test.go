package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyTestHelpers: the soak sees the logger from outside, as a
// user does; of dockerlogger's own packages it may import only the test
// helpers under internal/.
func TestImportsOnlyTestHelpers(t *testing.T) {
	const module = "github.com/joyent/dockerlogger/"
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, module) && !strings.HasPrefix(path, module+"internal/") {
				t.Errorf("%s imports %s: the soak must never import dockerlogger's own packages", file, path)
			}
		}
	}
}
