package auth

import (
	"crypto/tls"
	"crypto/x509"
	"slices"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/identity"
)

// CertificateOptions say how a verified client certificate names a caller.
type CertificateOptions struct {
	// UserFrom is config.CertCN, CertDNS, CertEmail or CertURI: the
	// subject's common name, or the first subject alternative name of that
	// kind.
	UserFrom string
	// GroupsFrom is "" (none), config.CertOU or CertO: the subject's
	// organizational units or organizations.
	GroupsFrom string
}

// fromCertificate names the caller after its client certificate.
//
// Only a chain the TLS layer verified against the configured client CAs
// counts. With client_auth_type RequestClientCert or RequireAnyClientCert
// the TLS layer accepts any certificate without verifying it; such a
// certificate proves nothing, and presenting it is a failed credential, not
// a reason to try weaker methods.
func (a *Authenticator) fromCertificate(cs *tls.ConnectionState) (identity.Identity, error) {
	if !tlsVerified(cs) {
		return identity.Identity{}, apierror.New(apierror.Unauthorized, "client certificate not verified: the web configuration's client_auth_type must verify client certificates")
	}
	// The leaf of a verified chain is the certificate the client presented.
	leaf := cs.VerifiedChains[0][0]
	user := certUser(leaf, a.cert.UserFrom)
	if user == "" {
		return identity.Identity{}, apierror.New(apierror.Unauthorized, "client certificate has no %s naming a user", a.cert.UserFrom)
	}
	return identity.Identity{User: user, Groups: certGroups(leaf, a.cert.GroupsFrom), Method: MethodCertificate}, nil
}

func certUser(c *x509.Certificate, from string) string {
	switch from {
	case config.CertCN, "":
		return c.Subject.CommonName
	case config.CertDNS:
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0]
		}
	case config.CertEmail:
		if len(c.EmailAddresses) > 0 {
			return c.EmailAddresses[0]
		}
	case config.CertURI:
		if len(c.URIs) > 0 {
			return c.URIs[0].String()
		}
	}
	return ""
}

func certGroups(c *x509.Certificate, from string) []string {
	var gs []string
	switch from {
	case config.CertOU:
		gs = c.Subject.OrganizationalUnit
	case config.CertO:
		gs = c.Subject.Organization
	}
	gs = slices.DeleteFunc(slices.Clone(gs), func(g string) bool { return g == "" })
	if len(gs) == 0 {
		return nil
	}
	return gs
}
