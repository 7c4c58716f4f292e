package prometheus

import "github.com/promgate/promgate/internal/jsonscan"

// The data of /api/v1/alerts, and an alert (also of a rule).
var (
	alertsObject = jsonscan.NewObject("alerts")
	alertObject  = jsonscan.NewObject("labels")
)

// alert keeps an alert (of /api/v1/alerts or of a rule) when its labels
// are the tenant's.
func (f *labelFilter) alert(out, b []byte, vs int) ([]byte, int, bool, error) {
	switch b[vs] {
	case 'n':
		return f.nullElement(out, b, vs)
	case '{':
	default:
		return notObject(b, vs, "an alert")
	}
	rewrite := false
	f.labels.set(b, -1, -1)
	end, err := alertObject.Walk(b, vs, &f.elem, func(_, s int) (int, error) {
		return readLabels(b, s, &f.labels, &rewrite)
	})
	if err != nil || !f.allow(f.getLabels) {
		return out, end, false, err
	}
	return kept(out, b, f.elem.Spans, vs, end, "labels", &f.labels, rewrite, f.elem.Dup)
}

// filterAlertsData keeps the alerts of /api/v1/alerts the tenant may see.
// The answer has only alerts: what else Prometheus may add is not passed
// on.
func filterAlertsData(out, data []byte, allow visibleFunc) ([]byte, int, error) {
	f := newLabelFilter(allow)
	defer f.release()
	out = append(out, `{"alerts":`...)
	mark := len(out)
	var end int
	var err error
	switch data[0] {
	case 'n':
		end, err = jsonscan.SkipLiteral(data, 0, "null")
	case '{':
		end, err = alertsObject.Walk(data, 0, &f.top, func(_, vs int) (e int, err error) {
			out, e, _, err = filterArray(out[:mark], data, vs, func(out []byte, s int) ([]byte, int, bool, error) {
				return f.alert(out, data, s)
			})
			return e, err
		})
	default:
		end, err = jsonscan.SkipValue(data, 0)
		if err == nil {
			err = jsonscan.TypeError(data[0], "the alerts")
		}
	}
	if err != nil {
		return out, end, err
	}
	if len(out) == mark {
		out = append(out, "[]"...)
	}
	return append(out, '}'), end, nil
}
