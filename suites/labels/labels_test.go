package labels

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/pxe-conformance/pxe-conformance/suites/config"
)

// TestMain defines the suite's --pxec.* flags on this test binary too: `go test ./suites/...
// -args --pxec.mac=...` hands them to every package's test binary.
func TestMain(m *testing.M) {
	config.RegisterFlags(flag.CommandLine)
	flag.Parse()
	os.Exit(m.Run())
}

func TestLabelsAreValidGinkgoLabels(t *testing.T) {
	seen := map[string]bool{}
	for _, l := range All() {
		clean, err := types.ValidateAndCleanupLabel(l, types.CodeLocation{})
		if err != nil {
			t.Errorf("label %q: %v", l, err)
			continue
		}
		if clean != l || strings.ToLower(l) != l || strings.ContainsAny(l, " :") {
			t.Errorf("label %q: want lower case without spaces or colons, so filters match it as written", l)
		}
		if seen[l] {
			t.Errorf("label %q: used by two constants", l)
		}
		seen[l] = true
	}
}

// TestAllListsEveryConstant keeps All in step with the constants in labels.go.
func TestAllListsEveryConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "labels.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					t.Fatalf("label constant with a non-literal value at %v", v.Pos())
				}
				l, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				consts = append(consts, l)
			}
		}
	}
	all := All()
	slices.Sort(consts)
	slices.Sort(all)
	if !slices.Equal(consts, all) {
		t.Errorf("labels.go declares %q, All returns %q", consts, all)
	}
}
