package prometheus

import (
	"encoding/json"

	"github.com/promgate/promgate/internal/jsonscan"
)

// The data of /api/v1/targets: active and dropped targets.
var (
	targetsObject = jsonscan.NewObject("activeTargets", "droppedTargets", "droppedTargetCounts")
	targetObject  = jsonscan.NewObject("labels", "discoveredLabels")
)

// target keeps a target on its labels, the labels its series carry; a
// dropped target has only its discovered labels (static labels of the
// configuration among them); without any it is nobody's.
func (f *labelFilter) target(out, b []byte, vs int) ([]byte, int, bool, error) {
	switch b[vs] {
	case 'n':
		end, err := jsonscan.SkipLiteral(b, vs, "null")
		return out, end, false, err
	case '{':
	default:
		return notObject(b, vs, "a target")
	}
	var rewrite, rewriteDisc bool
	f.labels.set(b, -1, -1)
	f.disc.set(b, -1, -1)
	end, err := targetObject.Walk(b, vs, &f.elem, func(field, s int) (int, error) {
		if field == 0 {
			return readLabels(b, s, &f.labels, &rewrite)
		}
		return readLabels(b, s, &f.disc, &rewriteDisc)
	})
	if err != nil {
		return out, end, false, err
	}
	hasLabels, hasDisc := f.labels.at >= 0, f.disc.at >= 0
	if !(hasLabels && f.allow(f.getLabels) || !hasLabels && hasDisc && f.allow(f.getDisc)) {
		return out, end, false, nil
	}
	return kept(out, b, f.elem.Spans, vs, end, "labels", &f.labels, rewrite, f.elem.Dup)
}

// filterTargetsData keeps the active and dropped targets the tenant may
// see.
func filterTargetsData(out, data []byte, allow visibleFunc) ([]byte, int, error) {
	switch data[0] {
	case 'n':
		end, err := jsonscan.SkipLiteral(data, 0, "null")
		return append(out, "null"...), end, err
	case '{':
	default:
		end, err := jsonscan.SkipValue(data, 0)
		if err == nil {
			err = jsonscan.TypeError(data[0], "the targets")
		}
		return out, end, err
	}
	f := newLabelFilter(allow)
	defer f.release()
	end, err := targetsObject.Walk(data, 0, &f.top, func(field, vs int) (e int, err error) {
		if field == 2 {
			return jsonscan.SkipValue(data, vs)
		}
		f.lists[field], e, _, err = filterArray(f.lists[field][:0], data, vs, func(out []byte, s int) ([]byte, int, bool, error) {
			return f.target(out, data, s)
		})
		return e, err
	})
	if err != nil {
		return out, end, err
	}
	var add []jsonscan.Member
	for i, key := range [...]string{"activeTargets", "droppedTargets"} {
		if f.top.Found(i) {
			add = append(add, jsonscan.Member{Key: key, Value: f.lists[i]})
		}
	}
	// Prometheus' counts of dropped targets per pool (3.x) would tell what
	// other tenants run; the tenant gets counts of the dropped targets they
	// see, for every pool they see (the 3.x UI reads a count for each).
	if f.top.Found(2) {
		var active, dropped []byte
		if f.top.Found(0) {
			active = f.lists[0]
		}
		if f.top.Found(1) {
			dropped = f.lists[1]
		}
		counts, err := droppedCounts(active, dropped)
		if err != nil {
			return out, end, err
		}
		add = append(add, jsonscan.Member{Key: "droppedTargetCounts", Value: counts})
	}
	out, err = jsonscan.WriteObject(out, data, f.top.Spans, jsonscan.DropKeys("activeTargets", "droppedTargets", "droppedTargetCounts"), add)
	return out, end, err
}

// droppedCounts counts the kept dropped targets by scrape pool, with a
// zero for each pool of a kept active target. The lists are the filter's
// own output, already checked; the endpoint is not a hot path.
func droppedCounts(active, dropped []byte) ([]byte, error) {
	type pooled struct {
		ScrapePool string `json:"scrapePool"`
	}
	var as, ds []pooled
	if len(active) > 0 {
		if err := json.Unmarshal(active, &as); err != nil {
			return nil, err
		}
	}
	if len(dropped) > 0 {
		if err := json.Unmarshal(dropped, &ds); err != nil {
			return nil, err
		}
	}
	counts := map[string]int{}
	for _, t := range as {
		if t.ScrapePool != "" {
			counts[t.ScrapePool] += 0
		}
	}
	for _, t := range ds {
		if t.ScrapePool != "" {
			counts[t.ScrapePool]++
		}
	}
	return json.Marshal(counts)
}
