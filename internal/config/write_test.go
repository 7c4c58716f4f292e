package config

import (
	"strings"
	"testing"
)

func TestWriteLimitsSection(t *testing.T) {
	const base = "upstreams:\n  prometheus:\n    url: http://localhost:9090\nauthentication:\n  trusted_header:\n    name: X-User\n    trusted_sources: [127.0.0.1/32]\n"
	for _, tc := range []struct {
		name    string
		yaml    string
		want    *WriteLimits
		wantErr []string
	}{
		{name: "absent", yaml: ""},
		{name: "empty", yaml: "write_limits: {}\n", want: &WriteLimits{}},
		{name: "every key", yaml: "write_limits:\n  max_body_size: 8MiB\n  max_decoded_size: 16777216\n  max_series_per_request: 5000\n  max_labels_per_series: 40\n  max_label_name_length: 200\n  max_label_value_length: 2048\n",
			want: &WriteLimits{MaxBodySize: 8 << 20, MaxDecodedSize: 16 << 20, MaxSeriesPerRequest: 5000, MaxLabelsPerSeries: 40, MaxLabelNameLength: 200, MaxLabelValueLength: 2048}},
		{name: "units", yaml: "write_limits:\n  max_body_size: 512KiB\n  max_decoded_size: 1GiB\n", want: &WriteLimits{MaxBodySize: 512 << 10, MaxDecodedSize: 1 << 30}},
		{name: "not a size", yaml: "write_limits:\n  max_body_size: lots\n", wantErr: []string{`line 9: "lots" is not a size`}},
		{name: "negative values, every one reported", yaml: "write_limits:\n  max_body_size: -1\n  max_series_per_request: -2\n  max_label_value_length: -3\n",
			wantErr: []string{"line 9: write_limits.max_body_size must not be negative", "line 10: write_limits.max_series_per_request must not be negative", "line 11: write_limits.max_label_value_length must not be negative"}},
		{name: "too large", yaml: "write_limits:\n  max_decoded_size: 2GiB\n", wantErr: []string{"line 9: write_limits.max_decoded_size must be at most 1GiB"}},
		{name: "unknown key", yaml: "write_limits:\n  max_series: 5\n", wantErr: []string{`line 9: unknown field "max_series" in WriteLimits`}},
		{name: "wrong type", yaml: "write_limits:\n  max_labels_per_series: many\n", wantErr: []string{"line 9:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base + tc.yaml))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted, want errors %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q, want one containing %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.WriteLimits == nil) != (tc.want == nil) || cfg.WriteLimits != nil && *cfg.WriteLimits != *tc.want {
				t.Fatalf("write_limits %+v, want %+v", cfg.WriteLimits, tc.want)
			}
		})
	}
}
