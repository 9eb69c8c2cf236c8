// Package httpstep is Durable's outbound step client: it makes one attempt
// of a call step, exactly as the step protocol of DESIGN.md describes, and
// classifies the answer.
//
// Every request is signed with Standard Webhooks headers, has a per-attempt
// timeout and a bounded response size, follows no redirect, uses no proxy,
// and may only dial addresses that the SSRF guard accepts: private,
// loopback, link-local and other special-purpose addresses are refused,
// checked on the address actually dialled (so DNS cannot be used to get
// round it), unless [Config.AllowHosts] permits them.
//
// Retries are not this package's business: [Client.Invoke] makes exactly one
// attempt, and the caller schedules the next one durably. Nothing here logs,
// and no error message carries a URL's path or query, which may hold
// secrets: a step is described by its host alone.
package httpstep

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/durablehq/durable/internal/signing"
)

// Defaults of [Config] and [Request].
const (
	DefaultMaxResponseBytes = 1 << 20
	DefaultTimeout          = 30 * time.Second
	DefaultUserAgent        = "Durable"
)

// Config configures a [Client].
type Config struct {
	// Secrets sign every request. Required.
	Secrets *signing.Secrets
	// AllowHosts lists CIDRs ("127.0.0.0/8", "::1/128" or bare IPs) and host
	// names that steps may call despite the private-address rule. Empty
	// means no exception. A CIDR permits the dialled addresses it contains,
	// whatever name resolved to them; a host name permits any address, but
	// only for URLs whose host is exactly that name (case-insensitive, a
	// trailing dot ignored).
	AllowHosts []string
	// MaxResponseBytes caps the body of an answer; 0 means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// UserAgent is sent as User-Agent, "Durable/<version>"; empty means
	// DefaultUserAgent.
	UserAgent string
	// Now is the clock used for webhook timestamps and Retry-After dates;
	// nil means time.Now.
	Now func() time.Time
}

// Client invokes steps. It is safe for concurrent use; one Client should
// serve a whole process, so that connections to the same host are pooled.
type Client struct {
	secrets   *signing.Secrets
	maxBytes  int64
	userAgent string
	now       func() time.Time

	guard     *guard
	transport *http.Transport
	http      *retryablehttp.Client
}

// New returns a Client for cfg, or an error naming every bad entry of
// cfg.AllowHosts.
func New(cfg Config) (*Client, error) {
	if cfg.Secrets == nil {
		return nil, errors.New("httpstep: no signing secrets")
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("httpstep: negative MaxResponseBytes %d", cfg.MaxResponseBytes)
	}
	g, err := newGuard(cfg.AllowHosts)
	if err != nil {
		return nil, fmt.Errorf("httpstep: %w", err)
	}
	c := &Client{
		secrets:   cfg.Secrets,
		maxBytes:  cfg.MaxResponseBytes,
		userAgent: cfg.UserAgent,
		now:       cfg.Now,
		guard:     g,
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.now == nil {
		c.now = time.Now
	}

	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	c.transport = &http.Transport{
		Proxy: nil, // never a proxy from the environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return g.dial(ctx, dialer, network, addr)
		},
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.http = &retryablehttp.Client{
		HTTPClient: &http.Client{
			// keepIdle hides CloseIdleConnections from retryablehttp, which
			// calls it after every failed request: one unreachable step
			// must not drop the pooled connections of all the others.
			Transport: keepIdle{c.transport},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		Logger:       nil, // URLs may carry tokens: they never reach a log
		RetryMax:     0,   // one attempt; retries are scheduled durably
		CheckRetry:   func(context.Context, *http.Response, error) (bool, error) { return false, nil },
		Backoff:      retryablehttp.DefaultBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return c, nil
}

// Close closes the idle pooled connections. The Client remains usable.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
}

// keepIdle is a RoundTripper without a CloseIdleConnections method.
type keepIdle struct{ rt http.RoundTripper }

func (k keepIdle) RoundTrip(r *http.Request) (*http.Response, error) { return k.rt.RoundTrip(r) }
