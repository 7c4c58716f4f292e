package testenv

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
)

func TestNativeHistograms(t *testing.T) {
	ds := GenerateWith(GenerateOptions{UTF8Names: true, NativeHistograms: true})
	native := ds.NativeSeries()
	want := 30 + 30 + 30 + 12
	if len(native) != want {
		t.Fatalf("%d native histogram series, want %d", len(native), want)
	}
	kinds := map[string]bool{}
	for _, s := range native {
		if len(s.Samples) != 0 || len(s.Histograms) != Span/Step+1 {
			t.Fatalf("%s: %d float samples, %d histograms", s.Key(), len(s.Samples), len(s.Histograms))
		}
		for i, h := range s.Histograms {
			var err error
			switch {
			case h.FH != nil:
				err = h.FH.Validate()
				kinds["float"] = true
			case h.H.Schema == histogram.CustomBucketsSchema:
				err = h.H.Validate()
				kinds["custom"] = true
			default:
				err = h.H.Validate()
				kinds["exponential"] = true
				if i > 0 && h.H.Count < s.Histograms[i-1].H.Count {
					kinds["reset"] = true
				}
			}
			if err != nil {
				t.Fatalf("%s at %d: %v", s.Key(), h.T, err)
			}
		}
	}
	for _, k := range []string{"float", "custom", "exponential", "reset"} {
		if !kinds[k] {
			t.Errorf("no %s native histogram", k)
		}
	}
	// The other series are those of the data without native histograms.
	if got, plain := len(ds.AllSeries())-len(native), len(GenerateWith(GenerateOptions{UTF8Names: true}).AllSeries()); got != plain {
		t.Errorf("%d other series, want %d", got, plain)
	}
	var buf bytes.Buffer
	if err := ds.WriteOpenMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), NativeLatency) {
		t.Error("OpenMetrics output holds native histograms")
	}
	sels, _ := ParseSelectors(`{team="a"}`)
	if n := len(ds.Filter(sels).NativeSeries()); n == 0 || n >= len(native) {
		t.Errorf("a filter keeps %d of %d native series", n, len(native))
	}
	var histograms int
	for _, req := range ds.WriteRequests(20) {
		if len(req.Timeseries) > 20 {
			t.Fatalf("request of %d series", len(req.Timeseries))
		}
		for _, ts := range req.Timeseries {
			histograms += len(ts.Histograms)
			for _, h := range ts.Histograms {
				if h.ResetHint == prompb.Histogram_GAUGE != h.IsFloatHistogram() {
					t.Fatalf("float histograms are the gauge ones: %+v", h)
				}
			}
		}
	}
	if histograms != want*(Span/Step+1) {
		t.Errorf("%d histograms written, want %d", histograms, want*(Span/Step+1))
	}
}

func TestBucketIndex(t *testing.T) {
	for _, c := range []struct {
		v      float64
		schema int32
		want   int32
	}{
		{1, 0, 0}, {1.5, 0, 1}, {2, 0, 1}, {2.01, 0, 2}, {0.5, 0, -1}, {0.3, 0, -1},
		{1, 1, 0}, {1.414, 1, 1}, {1.415, 1, 2}, {2, 1, 2}, {4, 3, 16},
	} {
		if got := bucketIndex(c.v, c.schema); got != c.want {
			t.Errorf("bucketIndex(%v, %d) = %d, want %d", c.v, c.schema, got, c.want)
		}
	}
}
