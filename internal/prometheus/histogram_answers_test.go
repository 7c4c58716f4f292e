package prometheus

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/limits"
)

// Query answers with native histogram samples ("histogram" in a vector,
// "histograms" in a matrix, beside or instead of "value" and "values")
// pass through promgate's merging and truncation whole: each series as
// the upstream wrote it.

const (
	nhA = `{"count":"6","sum":"1.5","buckets":[[0,"0.5","1","2"],[0,"1","2","4"]]}`
	nhB = `{"count":"2.5","sum":"0.25","buckets":[[3,"-0.001","0.001","2.5"]]}`
)

func TestMergeMatricesHistograms(t *testing.T) {
	a := `{"metric":{"__name__":"x","team":"a"},"histograms":[[1,` + nhA + `],[2,` + nhB + `]]}`
	both := `{"metric":{"__name__":"x","env":"p","team":"a"},"values":[[1,"2"]],"histograms":[[2,` + nhA + `]]}`
	b := `{"metric":{"__name__":"x","env":"p","team":"b"},"histograms":[[1,` + nhB + `]]}`
	up := &fixedUpstream{answers: map[string]string{
		`{__name__="x",team="a"}[5m]`: `{"status":"success","data":{"resultType":"matrix","result":[` + a + `,` + both + `]}}`,
		`{__name__="x",env="p"}[5m]`:  `{"status":"success","data":{"resultType":"matrix","result":[` + both + `,` + b + `]}}`,
	}}
	api := New(up, Options{})
	rec := httptest.NewRecorder()
	api.Handle(rec, httptest.NewRequest("GET", "/api/v1/query?query=x[5m]&time=1", nil), "/api/v1/query", enforcer(t, `{team="a"}`, `{env="p"}`))
	var got struct {
		Data matrixData `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err, rec.Body)
	}
	want := []string{a, both, b}
	if len(got.Data.Result) != len(want) {
		t.Fatalf("merged answer: %s", rec.Body)
	}
	for i, s := range got.Data.Result {
		if string(s) != want[i] {
			t.Errorf("series %d:\n%s\nwant\n%s", i, s, want[i])
		}
	}
}

func TestTruncatedHistograms(t *testing.T) {
	vector := `{"resultType":"vector","result":[{"metric":{"i":"1"},"histogram":[1,` + nhA + `]},{"metric":{"i":"2"},"value":[1,"1"]},{"metric":{"i":"3"},"histogram":[1,` + nhB + `]}]}`
	matrix := `{"resultType":"matrix","result":[{"metric":{"i":"1"},"histograms":[[1,` + nhA + `]]},{"metric":{"i":"2"},"histograms":[[1,` + nhB + `]]}]}`
	for _, tc := range []struct {
		name, path, answer string
		max                int
		want               string // the answer's result
	}{
		{"vector cut", "/api/v1/query", vector, 2, `[{"metric":{"i":"1"},"histogram":[1,` + nhA + `]},{"metric":{"i":"2"},"value":[1,"1"]}]`},
		{"vector under the limit", "/api/v1/query", vector, 3, `[{"metric":{"i":"1"},"histogram":[1,` + nhA + `]},{"metric":{"i":"2"},"value":[1,"1"]},{"metric":{"i":"3"},"histogram":[1,` + nhB + `]}]`},
		{"matrix cut", "/api/v1/query_range", matrix, 1, `[{"metric":{"i":"1"},"histograms":[[1,` + nhA + `]]}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &paths{answers: map[string]string{
				tc.path:                    success(tc.answer),
				"/api/v1/status/buildinfo": success(`{"version":"3.1.0"}`),
			}}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", tc.path+"?query=x&start=1&end=2&step=1", nil)
			req = req.WithContext(limits.NewContext(req.Context(), &limits.Limits{MaxSeries: tc.max}))
			rec := httptest.NewRecorder()
			api.Handle(rec, req, tc.path, enforcer(t, `{team="a"}`))
			var ar struct {
				Data queryData `json:"data"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil {
				t.Fatal(err, rec.Body)
			}
			if got := strings.TrimSpace(string(ar.Data.Result)); got != tc.want {
				t.Errorf("result\n%s\nwant\n%s\n(answer %s)", got, tc.want, rec.Body)
			}
		})
	}
	if n, err := entries("/api/v1/query", []byte(vector)); n != 3 || err != nil {
		t.Errorf("entries of a vector of histograms: %d, %v", n, err)
	}
}
