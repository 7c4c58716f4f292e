package prometheus

import "github.com/promgate/promgate/internal/jsonscan"

// An entry of /api/v1/targets/metadata.
var targetMetadataObject = jsonscan.NewObject("target", "metric")

// filterTargetsMetadataData keeps the entries of /api/v1/targets/metadata
// whose series are the tenant's: the target's labels with the metric's
// name. limit (<= 0: none) applies after filtering.
func filterTargetsMetadataData(out, data []byte, allow visibleFunc, limit int) ([]byte, int, error) {
	f := newLabelFilter(allow)
	defer f.release()
	n := 0
	out, end, _, err := filterArray(out, data, 0, func(out []byte, vs int) ([]byte, int, bool, error) {
		var metric string
		rewrite := false
		end := vs
		f.labels.set(data, -1, -1)
		f.elem.Spans, f.elem.Dup = f.elem.Spans[:0], false
		switch data[vs] {
		case 'n':
			var err error
			if end, err = jsonscan.SkipLiteral(data, vs, "null"); err != nil {
				return out, end, false, err
			}
		case '{':
			var err error
			end, err = targetMetadataObject.Walk(data, vs, &f.elem, func(field, s int) (int, error) {
				if field == 0 {
					return readLabels(data, s, &f.labels, &rewrite)
				}
				return readString(data, s, &metric)
			})
			if err != nil {
				return out, end, false, err
			}
		default:
			return notObject(data, vs, "target metadata")
		}
		// The series of this metric from this target carry the target's
		// labels and the metric's name.
		if metric != "" {
			f.labels.metric, f.labels.hasMetric = metric, true
		}
		if !f.allow(f.getLabels) || limit > 0 && n >= limit {
			return out, end, false, nil
		}
		n++
		if data[vs] == 'n' {
			return append(out, "{}"...), end, true, nil
		}
		return kept(out, data, f.elem.Spans, vs, end, "target", &f.labels, rewrite, f.elem.Dup)
	})
	return out, end, err
}
