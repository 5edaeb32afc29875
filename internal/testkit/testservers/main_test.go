package testservers

import (
	"errors"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

func TestMain(m *testing.M) { Main(m) }

// TestStartup reports how long the servers took to become ready; it is the
// first test to ask for them unless others run before it.
func TestStartup(t *testing.T) {
	s := MinIO(t)
	t.Logf("MinIO %s ready after %v", s.Endpoint, s.startup.Round(1e6))
	g := Moto(t)
	t.Logf("moto %s ready after %v", g.Endpoint, g.startup.Round(1e6))
}

// httpStatus returns the HTTP status of an SDK error, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode returns the service's error code of an SDK error, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
