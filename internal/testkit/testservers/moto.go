package testservers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/glue/types"
)

// Glue is a running moto server, used for its Glue emulation.
type Glue struct {
	Endpoint string // http://127.0.0.1:PORT

	log     *tailBuffer
	startup time.Duration
}

var moto = sync.OnceValues(startMoto)

// Moto returns the moto server of this test process, starting it on the
// first call. It skips the test when moto_server cannot be found or
// started, or fails it when CI=true.
func Moto(t testing.TB) *Glue {
	t.Helper()
	g, err := moto()
	if err != nil {
		unavailable(t, err)
	}
	hintMain(t)
	return g
}

func motoBinary() (string, error) {
	const hint = "install it with `pip install 'moto[server]'`"
	if bin, ok, err := binaryFromEnv("ICEMERGE_MOTO_BIN", "moto_server", hint); ok {
		return bin, err
	}
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return "", &startError{msg: "moto_server not found on PATH: " + hint}
	}
	return bin, nil
}

func startMoto() (*Glue, error) {
	bin, err := motoBinary()
	if err != nil {
		return nil, err
	}
	var g *Glue
	_, took, err := startWithRetry("moto_server", func() (*process, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		dir, err := serverDir("moto")
		if err != nil {
			return nil, err
		}
		port := strconv.Itoa(ports[0])
		p, err := start("moto_server", dir, nil, bin, "-H", "127.0.0.1", "-p", port)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, &startError{msg: fmt.Sprintf("moto_server at %s: %v", bin, err)}
		}
		g = &Glue{Endpoint: "http://127.0.0.1:" + port, log: p.log}
		if err := p.waitReady(g.Endpoint+"/", func(*http.Response) bool { return true }); err != nil {
			p.abandon()
			return nil, startFailure(p, fmt.Errorf("moto_server at %s: %w", bin, err))
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	g.startup = took
	return g, nil
}

// LogTail returns the last n lines moto printed, for failure messages.
func (g *Glue) LogTail(n int) string { return g.log.tail(n) }

// Env returns the standard AWS variables that point the SDK's Glue client
// at this server: AWS_ENDPOINT_URL_GLUE, and the same credentials and
// region as [S3.Env] (moto accepts any), so the two maps merge without
// conflict.
func (g *Glue) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_GLUE": g.Endpoint,
		"AWS_ACCESS_KEY_ID":     testAccessKey,
		"AWS_SECRET_ACCESS_KEY": testSecretKey,
		"AWS_REGION":            testRegion,
	}
}

// NewDatabase creates an empty Glue database for t, named after the test
// and unique in the process, and returns its name.
func (g *Glue) NewDatabase(t testing.TB) string {
	t.Helper()
	name := strings.ReplaceAll(bucketName(t.Name()), "-", "_")
	client := glue.NewFromConfig(AWSConfig(t, nil, g, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := client.CreateDatabase(ctx, &glue.CreateDatabaseInput{DatabaseInput: &types.DatabaseInput{Name: aws.String(name)}})
	if err != nil {
		t.Fatalf("create Glue database %s on moto %s: %v", name, g.Endpoint, err)
	}
	return name
}
