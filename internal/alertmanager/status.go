package alertmanager

import (
	"encoding/json"
	"fmt"

	"github.com/promgate/promgate/internal/jsonscan"
)

// RedactStatus returns what a tenant sees of GET /api/v2/status:
//
//   - versionInfo and uptime, as they are (the build, as Prometheus'
//     buildinfo, is no tenant's data; amtool compares its version with it);
//   - cluster: its status ("ready", "settling", "disabled") and this
//     node's name, an opaque ID; of the peers only their names. Peer
//     addresses are blanked: the cluster's gossip port takes silences
//     without authentication, so its address is how a tenant would go
//     around promgate;
//   - config.original is the empty string: the configuration holds every
//     tenant's routes, receivers and their endpoints and credentials.
//
// Fields are kept only when known (new fields of later Alertmanagers are
// dropped until someone decides they are harmless); the fields the UI and
// amtool require are kept present.
func RedactStatus(body []byte) ([]byte, error) {
	var in struct {
		Uptime      json.RawMessage `json:"uptime"`
		VersionInfo json.RawMessage `json:"versionInfo"`
		Cluster     struct {
			Name   *string         `json:"name,omitempty"`
			Status json.RawMessage `json:"status"`
			Peers  []struct {
				Name json.RawMessage `json:"name"`
			} `json:"peers"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	if in.Uptime == nil || in.VersionInfo == nil || in.Cluster.Status == nil {
		return nil, fmt.Errorf("status without uptime, versionInfo or cluster.status")
	}
	type peer struct {
		Name    json.RawMessage `json:"name"`
		Address string          `json:"address"`
	}
	out := struct {
		Cluster struct {
			Name   *string         `json:"name,omitempty"`
			Status json.RawMessage `json:"status"`
			Peers  []peer          `json:"peers"`
		} `json:"cluster"`
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
		Uptime      json.RawMessage `json:"uptime"`
		VersionInfo json.RawMessage `json:"versionInfo"`
	}{Uptime: in.Uptime, VersionInfo: in.VersionInfo}
	out.Cluster.Name = in.Cluster.Name
	out.Cluster.Status = in.Cluster.Status
	out.Cluster.Peers = []peer{}
	for _, p := range in.Cluster.Peers {
		out.Cluster.Peers = append(out.Cluster.Peers, peer{Name: p.Name})
	}
	return json.Marshal(out)
}

// StatusConfig returns config.original of a GET /api/v2/status answer: the
// Alertmanager configuration, for the routing tree.
func StatusConfig(body []byte) (string, error) {
	var s struct {
		Config struct {
			Original *string `json:"original"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return "", err
	}
	if s.Config.Original == nil {
		return "", fmt.Errorf("status without config.original")
	}
	return *s.Config.Original, nil
}

// receiverObject is a receiver of GET /api/v2/receivers, by the key it
// is kept on: spelt otherwise, refused (jsonscan.ErrSpelling); given twice,
// the last, written once, as clients matching keys exactly read it.
var receiverObject = jsonscan.NewObject("name")

// FilterReceivers keeps the receivers of a GET /api/v2/receivers answer
// that keep names.
func FilterReceivers(body []byte, keep map[string]bool) ([]byte, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, err
	}
	kept := items[:0]
	var w jsonscan.Walk
	for _, raw := range items {
		if raw[0] == '{' {
			_, err := receiverObject.Walk(raw, 0, &w, func(_, vs int) (int, error) { return jsonscan.SkipValue(raw, vs) })
			if err != nil {
				return nil, err
			}
			if w.Dup {
				if raw, err = jsonscan.WriteObject(nil, raw, w.Spans, nil, nil); err != nil {
					return nil, err
				}
			}
		}
		var r struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		if keep[r.Name] {
			kept = append(kept, raw)
		}
	}
	return marshalRaw(kept), nil
}
