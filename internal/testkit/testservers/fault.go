package testservers

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Action is what a [Rule] does to a request it fires on.
type Action int

const (
	// Pass forwards the request unchanged. A Pass rule that fires still
	// counts in [FaultTransport.Hits] and shields the request from later
	// rules, which makes it a way to let the n-th matching request through.
	Pass Action = iota
	// FailBefore returns an error without sending the request: the process
	// crashed or lost the network before the request left.
	FailBefore
	// FailAfter sends the request, reads the whole response, then returns an
	// error: the server acted but the client does not know the outcome.
	FailAfter
	// Status answers Rule.Status with Rule.Body and Rule.Header without
	// sending the request, e.g. an S3 503 SlowDown or a Glue 400
	// ConcurrentModificationException.
	Status
	// Hang blocks until the request's context ends, then returns its error:
	// a server that never answers, seen by the client as a timeout.
	Hang
	// Drop returns a *net.OpError wrapping io.ErrUnexpectedEOF without
	// sending the request, as if the connection had been reset.
	Drop
)

func (a Action) String() string {
	switch a {
	case Pass:
		return "Pass"
	case FailBefore:
		return "FailBefore"
	case FailAfter:
		return "FailAfter"
	case Status:
		return "Status"
	case Hang:
		return "Hang"
	case Drop:
		return "Drop"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Rule says which requests a [FaultTransport] disturbs and how.
type Rule struct {
	// Name identifies the rule in [FaultTransport.Hits] and in errors.
	// Several rules may share a name; Hits then adds them up.
	Name string
	// Match selects the requests the rule applies to; nil matches every
	// request. It must not read req.Body (use req.GetBody for a copy) and
	// must not call back into the FaultTransport.
	Match func(req *http.Request) bool
	// Action is what happens to a request the rule fires on.
	Action Action
	// Status, Body and Header make the synthetic response of the Status
	// action. Status 0 means 500. Without a Content-Type header, one is
	// chosen from the body: XML for "<…", JSON 1.1 for "{…".
	Status int
	Body   string
	Header http.Header
	// Skip lets the first Skip matching requests pass to later rules.
	Skip int
	// Times is how often the rule fires; 0 means without limit.
	Times int
}

// FaultError is the error an injected fault returns. errors.Is(err,
// ErrInjected) holds for every one of them; Unwrap gives the underlying
// cause (ErrInjected, the context's error for Hang, io.ErrUnexpectedEOF for
// Drop, which also comes wrapped in a *net.OpError).
type FaultError struct {
	Rule   string
	Action Action
	Detail string
	Err    error
}

// ErrInjected marks every error a [FaultTransport] makes up.
var ErrInjected = errors.New("injected fault")

func (e *FaultError) Error() string {
	msg := fmt.Sprintf("testservers: rule %q: %v", e.Rule, e.Action)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	if e.Err != nil && e.Err != ErrInjected {
		msg += ": " + e.Err.Error()
	}
	return msg + ": " + ErrInjected.Error()
}

func (e *FaultError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInjected) hold whatever the cause.
func (e *FaultError) Is(target error) bool { return target == ErrInjected }

// FaultTransport is an http.RoundTripper that injects the faults its rules
// describe and passes everything else to a base transport. Rules are
// consulted in the order added; a rule counts every request its Match
// accepts, lets the first Skip of them go on to later rules, then fires at
// most Times times. The first rule that fires decides the request's fate and
// later rules do not see it. It is safe for concurrent use.
//
// A request that is not forwarded has its body closed, never read, as the
// RoundTripper contract asks; forwarded requests go to the base transport
// as they came, GetBody included, so the base transport and the SDK's own
// retries can replay the body.
type FaultTransport struct {
	base http.RoundTripper

	mu       sync.Mutex
	rules    []*ruleState
	requests []string
}

type ruleState struct {
	Rule
	matched, fired int
}

var _ http.RoundTripper = (*FaultTransport)(nil)

// NewFaultTransport returns a FaultTransport without rules around base;
// nil means http.DefaultTransport.
func NewFaultTransport(base http.RoundTripper) *FaultTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &FaultTransport{base: base}
}

// Add appends a rule; it applies to requests sent from now on.
func (f *FaultTransport) Add(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &ruleState{Rule: r})
}

// Reset removes every rule and forgets the hits and the requests seen.
func (f *FaultTransport) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	f.requests = nil
}

// Hits reports how often the rules named name have fired.
func (f *FaultTransport) Hits(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.rules {
		if r.Name == name {
			n += r.fired
		}
	}
	return n
}

// Requests lists every request seen since the last Reset, oldest first, as
// "METHOD path" followed by " X-Amz-Target" when the header is set, e.g.
// "PUT /bucket/key" or "POST / AWSGlue.UpdateTable". It is meant for test
// failure messages.
func (f *FaultTransport) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// RoundTrip implements http.RoundTripper.
func (f *FaultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	rules := append([]*ruleState(nil), f.rules...)
	f.mu.Unlock()

	// Match is user code: run it outside the lock, then decide under the
	// lock so that Skip and Times count exactly under concurrency.
	matches := make([]bool, len(rules))
	for i, r := range rules {
		matches[i] = r.Match == nil || r.Match(req)
	}

	desc := req.Method + " " + req.URL.Path
	if t := req.Header.Get("X-Amz-Target"); t != "" {
		desc += " " + t
	}
	var rule *Rule
	f.mu.Lock()
	f.requests = append(f.requests, desc)
	for i, r := range rules {
		if !matches[i] {
			continue
		}
		r.matched++
		if r.matched <= r.Skip || (r.Times > 0 && r.fired >= r.Times) {
			continue
		}
		r.fired++
		rule = &r.Rule
		break
	}
	f.mu.Unlock()

	if rule == nil || rule.Action == Pass {
		return f.base.RoundTrip(req)
	}
	switch rule.Action {
	case FailAfter:
		resp, err := f.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return nil, &FaultError{Rule: rule.Name, Action: FailAfter,
			Detail: "the server answered " + resp.Status + " but the response was lost", Err: ErrInjected}
	case Status:
		closeBody(req)
		return syntheticResponse(req, rule), nil
	case Hang:
		closeBody(req)
		<-req.Context().Done()
		return nil, &FaultError{Rule: rule.Name, Action: Hang, Err: req.Context().Err()}
	case Drop:
		closeBody(req)
		return nil, &net.OpError{Op: "read", Net: "tcp", Addr: hostAddr(req.URL.Host),
			Err: &FaultError{Rule: rule.Name, Action: Drop, Detail: "connection reset by peer", Err: io.ErrUnexpectedEOF}}
	default: // FailBefore and unknown actions: never send what we do not understand.
		closeBody(req)
		return nil, &FaultError{Rule: rule.Name, Action: rule.Action, Detail: "request not sent", Err: ErrInjected}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func syntheticResponse(req *http.Request, r *Rule) *http.Response {
	code := r.Status
	if code == 0 {
		code = http.StatusInternalServerError
	}
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Content-Type") == "" {
		switch b := strings.TrimSpace(r.Body); {
		case strings.HasPrefix(b, "<"):
			h.Set("Content-Type", "application/xml")
		case strings.HasPrefix(b, "{"):
			h.Set("Content-Type", "application/x-amz-json-1.1")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(r.Body)))
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(r.Body)),
		ContentLength: int64(len(r.Body)),
		Request:       req,
	}
}

type hostAddr string

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return string(a) }

// S3ErrorBody returns an S3 error document, e.g. S3ErrorBody("SlowDown",
// "Please reduce your request rate.") for a Status rule with Status 503.
func S3ErrorBody(code, message string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<Error><Code>` + xmlEscape(code) + `</Code><Message>` + xmlEscape(message) +
		`</Message><RequestId>icemerge-fault</RequestId></Error>`
}

// GlueErrorBody returns a Glue (JSON 1.1) error document, e.g.
// GlueErrorBody("ConcurrentModificationException", "…") for a Status rule
// with Status 400.
func GlueErrorBody(errorType, message string) string {
	return fmt.Sprintf(`{"__type":%q,"Message":%q}`, errorType, message)
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MatchAny matches every request.
func MatchAny() func(*http.Request) bool {
	return func(*http.Request) bool { return true }
}

// MatchS3 matches S3 requests (SigV4-signed for service s3, or unsigned and
// without X-Amz-Target) whose method is method ("" for any) and whose path
// matches the unanchored regular expression pathRegexp ("" for any). With
// path-style addressing, as against MinIO, the path is /bucket/key, so
// `^/[^/]+/data/.*\.parquet$` selects data files. It panics on a bad
// expression, as regexp.MustCompile does.
func MatchS3(method, pathRegexp string) func(*http.Request) bool {
	var re *regexp.Regexp
	if pathRegexp != "" {
		re = regexp.MustCompile(pathRegexp)
	}
	return func(req *http.Request) bool {
		switch svc := signedService(req); {
		case svc == "" && req.Header.Get("X-Amz-Target") != "":
			return false
		case svc != "" && svc != "s3":
			return false
		}
		if method != "" && !strings.EqualFold(req.Method, method) {
			return false
		}
		return re == nil || re.MatchString(req.URL.Path)
	}
}

// MatchGlue matches Glue requests for one operation, named by its
// X-Amz-Target ("AWSGlue.UpdateTable") or just by the operation
// ("UpdateTable").
func MatchGlue(target string) func(*http.Request) bool {
	if !strings.Contains(target, ".") {
		target = "AWSGlue." + target
	}
	return func(req *http.Request) bool {
		return req.Header.Get("X-Amz-Target") == target
	}
}

// signedService returns the service of a SigV4 credential scope
// (AKID/date/region/service/aws4_request) from the Authorization header or
// a presigned URL, or "" for an unsigned request.
func signedService(req *http.Request) string {
	cred := ""
	if auth := req.Header.Get("Authorization"); auth != "" {
		if _, rest, ok := strings.Cut(auth, "Credential="); ok {
			cred, _, _ = strings.Cut(rest, ",")
		}
	} else if q, err := url.ParseQuery(req.URL.RawQuery); err == nil {
		cred = q.Get("X-Amz-Credential")
	}
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[len(parts)-2]
}
