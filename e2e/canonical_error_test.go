package e2e

import "testing"

func TestCanonicalError(t *testing.T) {
	a := `found duplicate series for the match group {team="c"} on the right hand-side of the operation: [{__name__="foo_c", team="c", x="2"}, {__name__="foo_c", team="c", x="1"}];many-to-many matching not allowed`
	b := `found duplicate series for the match group {team="c"} on the right hand-side of the operation: [{__name__="foo_c", team="c", x="1"}, {__name__="foo_c", team="c", x="2"}];many-to-many matching not allowed`
	c := `found duplicate series for the match group {team="c"} on the right hand-side of the operation: [{__name__="foo_c", team="c", x="1"}, {__name__="foo_c", team="c", x="3"}];many-to-many matching not allowed`
	if canonicalError(a) != canonicalError(b) {
		t.Errorf("the same series in another order differ:\n%s\n%s", canonicalError(a), canonicalError(b))
	}
	if canonicalError(a) == canonicalError(c) {
		t.Error("other series compare equal")
	}
}
