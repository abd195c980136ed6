package submitter

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// ambiguous reports a failed create call that may have created a job, and says why. The create
// calls are not idempotent: SharePoint may have created the job and the answer be lost on its way
// back. An answer says what happened: an error status (429 and 503 included: throttled, refused)
// means no job, except 408, 502 and 504, which a gateway may send for a request that reached
// SharePoint. No answer at all (a timeout, a reset or dropped connection) is ambiguous too,
// unless the request provably never left: no connection was made (dial, DNS, TLS verification),
// no token was had, or the client refused to send it.
func ambiguous(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var se *spo.Error
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusRequestTimeout, http.StatusBadGateway, http.StatusGatewayTimeout:
			return fmt.Sprintf("SharePoint answered HTTP %d", se.Status), true
		}
		return "", false
	}
	var te *spo.TransportError
	if errors.As(err, &te) && !neverSent(te.Err) {
		return "no answer: " + sas.Redact(te.Err.Error()), true
	}
	return "", false
}

// neverSent reports a transport failure that happened before the request could leave: no
// connection (dial, name resolution) or a server certificate that did not verify.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &dns) || errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
