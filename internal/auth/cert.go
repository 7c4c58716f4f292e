package auth

import (
	"crypto/tls"
	"crypto/x509"
	"slices"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
)

// Sources of a client certificate's user name and groups. They are the
// values of promgate.yml's client_certificate.user_from and groups_from.
const (
	CertCN    = "cn"    // the subject's common name
	CertDNS   = "dns"   // the first DNS subject alternative name
	CertEmail = "email" // the first email subject alternative name
	CertURI   = "uri"   // the first URI subject alternative name
	CertOU    = "ou"    // groups: the subject's organizational units
	CertO     = "o"     // groups: the subject's organizations
)

// CertificateOptions say how a verified client certificate names a caller.
type CertificateOptions struct {
	// UserFrom is CertCN, CertDNS, CertEmail or CertURI: the
	// subject's common name, or the first subject alternative name of that
	// kind.
	UserFrom string
	// GroupsFrom is "" (none), CertOU or CertO: the subject's
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
	case CertCN, "":
		return c.Subject.CommonName
	case CertDNS:
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0]
		}
	case CertEmail:
		if len(c.EmailAddresses) > 0 {
			return c.EmailAddresses[0]
		}
	case CertURI:
		if len(c.URIs) > 0 {
			return c.URIs[0].String()
		}
	}
	return ""
}

func certGroups(c *x509.Certificate, from string) []string {
	var gs []string
	switch from {
	case CertOU:
		gs = c.Subject.OrganizationalUnit
	case CertO:
		gs = c.Subject.Organization
	}
	gs = slices.DeleteFunc(slices.Clone(gs), func(g string) bool { return g == "" })
	if len(gs) == 0 {
		return nil
	}
	return gs
}
