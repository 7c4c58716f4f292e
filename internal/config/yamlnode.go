package config

import (
	"go.yaml.in/yaml/v3"
)

// YAML node helpers. They tolerate absent nodes (nil) so that a missing
// field is reported at the line of its parent.

// documentRoot returns the top mapping of a parsed document, or nil.
func documentRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return resolve(n.Content[0])
	}
	return nil
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

type pair struct{ key, value *yaml.Node }

// pairs lists the entries of a mapping in file order, expanding merge keys
// (<<) the way the decoder does: explicit keys win over merged ones.
func pairs(n *yaml.Node) []pair {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var merged, own []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], resolve(n.Content[i+1])
		if k.Tag == "!!merge" {
			if val != nil && val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					merged = append(merged, pairs(m)...)
				}
			} else {
				merged = append(merged, pairs(val)...)
			}
			continue
		}
		own = append(own, pair{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	out := own
	for _, m := range merged {
		shadowed := false
		for _, o := range own {
			if o.key.Value == m.key.Value {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, m)
		}
	}
	return out
}

// field returns the value node of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	_, v := entry(n, key)
	return v
}

// entry returns the key and value nodes of key in mapping n, or nils.
func entry(n *yaml.Node, key string) (k, v *yaml.Node) {
	for _, p := range pairs(n) {
		if p.key.Value == key {
			return p.key, p.value
		}
	}
	return nil, nil
}

// sequence returns the items of sequence n, always with length want so that
// they can be indexed alongside the decoded slice; items it cannot match
// are nil and fall back to the sequence's line.
func sequence(n *yaml.Node, want int) []*yaml.Node {
	out := make([]*yaml.Node, want)
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) != want {
		return out
	}
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// lineOf returns the line of n, or of the first non-nil fallback.
func lineOf(n *yaml.Node, fallback ...*yaml.Node) int {
	if n != nil {
		return n.Line
	}
	for _, f := range fallback {
		if f != nil {
			return f.Line
		}
	}
	return 1
}
