package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

// client is one keep-alive connection to promgate.
type client struct{ hc *http.Client }

func newClient() *client {
	return &client{hc: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true},
	}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// result is one answer, or the transport error that replaced it.
type result struct {
	code int
	body []byte
	err  error
}

func (c *client) do(req *http.Request, user string) result {
	if user != "" {
		req.Header.Set(identityHeader, user)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, body: body, err: err}
}

func (c *client) get(u, user string) result {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return result{err: err}
	}
	return c.do(req, user)
}

func (c *client) postForm(u, user string, form url.Values) result {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req, user)
}

// abort asks for a large answer, reads part of it and cancels the request,
// as a client that gives up halfway does. It reports how many bytes it
// read.
func (c *client) abort(base, user string) (int, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := url.Values{"query": {"soak_requests_total"}, "start": {strconv.Itoa(testenv.BaseTime - span)},
		"end": {strconv.Itoa(testenv.BaseTime)}, "step": {strconv.Itoa(step)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set(identityHeader, user)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 2048)
	n, err := io.ReadFull(resp.Body, buf)
	cancel()
	if err != nil && err != io.ErrUnexpectedEOF {
		return n, err
	}
	return n, nil
}

// kind is one of the requests a tenant makes, with the check of its answer.
type kind struct {
	name string
	// send makes the request for tenant through promgate at base.
	send func(c *client, base, tenant string) result
	// labels extracts the label sets of a 200 answer.
	labels func(body []byte) ([]map[string]string, error)
	// nonEmpty: the answer must hold something (the data is there).
	nonEmpty bool
}

var at = strconv.Itoa(testenv.BaseTime)

var kinds = []kind{
	{name: "query", nonEmpty: true, labels: vectorLabels, send: func(c *client, base, t string) result {
		return c.get(base+"/api/v1/query?"+url.Values{"query": {"soak_up"}, "time": {at}}.Encode(), t)
	}},
	{name: "query POST", nonEmpty: true, labels: vectorLabels, send: func(c *client, base, t string) result {
		return c.postForm(base+"/api/v1/query", t, url.Values{"query": {"sum by (team, instance) (rate(soak_requests_total[5m]))"}, "time": {at}})
	}},
	{name: "series", nonEmpty: true, labels: seriesLabels, send: func(c *client, base, t string) result {
		return c.get(base+"/api/v1/series?"+url.Values{"match[]": {"soak_requests_total"},
			"start": {strconv.Itoa(testenv.BaseTime - 600)}, "end": {at}}.Encode(), t)
	}},
	{name: "label values team", nonEmpty: true, labels: valuesAs("team"), send: func(c *client, base, t string) result {
		return c.get(base+"/api/v1/label/team/values?"+url.Values{"start": {strconv.Itoa(testenv.BaseTime - span)}, "end": {at}}.Encode(), t)
	}},
	{name: "label values instance", nonEmpty: true, labels: valuesAs("instance"), send: func(c *client, base, t string) result {
		return c.get(base+"/api/v1/label/instance/values?"+url.Values{"start": {strconv.Itoa(testenv.BaseTime - span)}, "end": {at}}.Encode(), t)
	}},
	// Alerts are not required to be there: after a restart Prometheus'
	// rules fire again only on their first evaluation.
	{name: "alerts", labels: promAlertLabels, send: func(c *client, base, t string) result {
		return c.get(base+"/api/v1/alerts", t)
	}},
	{name: "alertmanager alerts", labels: amAlertLabels, send: func(c *client, base, t string) result {
		return c.get(base+"/alertmanager/api/v2/alerts", t)
	}},
}

// foreign returns a description of the first label set that is not the
// tenant's: another team, no team, or an instance of another tenant.
func foreign(tenant string, sets []map[string]string) string {
	for _, ls := range sets {
		team, ok := ls["team"]
		if !ok && ls["instance"] == "" {
			return fmt.Sprintf("label set without team: %v", ls)
		}
		if ok && team != tenant {
			return fmt.Sprintf("team %q: %v", team, ls)
		}
		if inst, ok := ls["instance"]; ok && !strings.HasPrefix(inst, tenant+"-") {
			return fmt.Sprintf("instance %q: %v", inst, ls)
		}
	}
	return ""
}

type promEnvelope struct {
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data"`
}

func promData(body []byte, v any) error {
	var e promEnvelope
	if err := json.Unmarshal(body, &e); err != nil {
		return err
	}
	if e.Status != "success" {
		return fmt.Errorf("status %q", e.Status)
	}
	return json.Unmarshal(e.Data, v)
}

func vectorLabels(body []byte) ([]map[string]string, error) {
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	if err := promData(body, &d); err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(d.Result))
	for i, r := range d.Result {
		out[i] = r.Metric
	}
	return out, nil
}

func seriesLabels(body []byte) ([]map[string]string, error) {
	var d []map[string]string
	err := promData(body, &d)
	return d, err
}

func valuesAs(name string) func([]byte) ([]map[string]string, error) {
	return func(body []byte) ([]map[string]string, error) {
		var d []string
		if err := promData(body, &d); err != nil {
			return nil, err
		}
		out := make([]map[string]string, len(d))
		for i, v := range d {
			out[i] = map[string]string{name: v}
		}
		return out, nil
	}
}

func promAlertLabels(body []byte) ([]map[string]string, error) {
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := promData(body, &d); err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(d.Alerts))
	for i, a := range d.Alerts {
		out[i] = a.Labels
	}
	return out, nil
}

func amAlertLabels(body []byte) ([]map[string]string, error) {
	var d []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(d))
	for i, a := range d {
		out[i] = a.Labels
	}
	return out, nil
}
