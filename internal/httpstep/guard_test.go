package httpstep

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/signing"
)

func testSecrets(t *testing.T) *signing.Secrets {
	t.Helper()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	s, err := signing.ParseSecrets(secret)
	require.NoError(t, err)
	return s
}

// The guard's decisions for addresses that the tests must never dial are
// checked without dialling.
func TestGuardDecisions(t *testing.T) {
	t.Parallel()
	strict, err := newGuard(nil)
	require.NoError(t, err)
	allowing, err := newGuard([]string{"127.0.0.0/8", "::1", "10.1.0.0/16", "fd00:1::/32", "steps.internal"})
	require.NoError(t, err)

	for _, c := range []struct {
		addr             string
		strict, allowing bool // whether each guard accepts it
		kind             string
	}{
		{"8.8.8.8", true, true, ""},
		{"2001:4860:4860::8888", true, true, ""},
		{"127.0.0.1", false, true, "a loopback address"},
		{"127.255.0.9", false, true, "a loopback address"},
		{"::1", false, true, "a loopback address"},
		{"::ffff:127.0.0.1", false, true, "a loopback address"},
		{"10.0.0.1", false, false, "a private address"},
		{"10.1.2.3", false, true, "a private address"},
		{"172.16.5.4", false, false, "a private address"},
		{"192.168.1.1", false, false, "a private address"},
		{"::ffff:192.168.1.1", false, false, "a private address"},
		{"fd00:1::5", false, true, "a private address"},
		{"fc00::1", false, false, "a private address"},
		{"169.254.169.254", false, false, "a cloud metadata address"},
		{"fd00:ec2::254", false, false, "a cloud metadata address"},
		{"169.254.1.1", false, false, "a link-local address"},
		{"fe80::1", false, false, "a link-local address"},
		{"0.0.0.0", false, false, "an unspecified address"},
		{"::", false, false, "an unspecified address"},
		{"224.0.0.1", false, false, "a multicast address"},
		{"ff02::1", false, false, "a multicast address"},
		{"100.64.0.1", false, false, "a shared (carrier-grade NAT) address"},
		{"192.0.2.1", false, false, "a reserved address"},
		{"240.0.0.1", false, false, "a reserved address"},
	} {
		a := netip.MustParseAddr(c.addr)
		require.Equal(t, c.strict, strict.guardian.SafeAddr(a) == nil, "strict %s", c.addr)
		require.Equal(t, c.allowing, allowing.guardian.SafeAddr(a) == nil, "allowing %s", c.addr)
		if !c.strict {
			require.Equal(t, c.kind, describeAddr(a), c.addr)
		}
	}
	require.True(t, allowing.names["steps.internal"])
	require.False(t, strict.names["steps.internal"])
}

// The Control function refuses with a clear message, which never dials.
func TestGuardRefusalMessages(t *testing.T) {
	t.Parallel()
	g, err := newGuard(nil)
	require.NoError(t, err)

	err = g.control("metadata.google.internal")("tcp4", "169.254.169.254:80", nil)
	require.EqualError(t, err, "metadata.google.internal resolves to 169.254.169.254, a cloud metadata address, which steps may not call; allow it with DURABLE_ALLOW_HOSTS")
	err = g.control("10.0.0.7")("tcp4", "10.0.0.7:8443", nil)
	require.EqualError(t, err, "the step's address 10.0.0.7 is a private address, which steps may not call; allow it with DURABLE_ALLOW_HOSTS")
	err = g.control("[fe80::1]")("tcp6", "[fe80::1]:80", nil)
	require.EqualError(t, err, "the step's address fe80::1 is a link-local address, which steps may not call; allow it with DURABLE_ALLOW_HOSTS")
	require.NoError(t, g.control("example.com")("tcp4", "93.184.215.14:8080", nil), "any port is allowed")
	require.Error(t, g.control("example.com")("udp4", "93.184.215.14:53", nil))
}

func TestAllowedNames(t *testing.T) {
	t.Parallel()
	g, err := newGuard([]string{"Steps.Internal.", "localhost"})
	require.NoError(t, err)
	for _, h := range []string{"steps.internal", "STEPS.internal", "steps.internal.", "localhost", "LocalHost."} {
		require.True(t, g.names[normalizeHost(h)], h)
	}
	for _, h := range []string{"x.steps.internal", "steps.internal.evil", "127.0.0.1"} {
		require.False(t, g.names[normalizeHost(h)], h)
	}
}

func TestTransportSettings(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Secrets: testSecrets(t)})
	require.NoError(t, err)
	require.Nil(t, c.transport.Proxy)
	require.Equal(t, 256, c.transport.MaxIdleConnsPerHost)
	require.Nil(t, c.http.Logger)
	require.Zero(t, c.http.RetryMax)
	retry, err := c.http.CheckRetry(context.Background(), &http.Response{StatusCode: 503}, nil)
	require.False(t, retry)
	require.NoError(t, err)
	require.Equal(t, http.ErrUseLastResponse, c.http.HTTPClient.CheckRedirect(nil, nil))
	_, hides := c.http.HTTPClient.Transport.(interface{ CloseIdleConnections() })
	require.False(t, hides, "retryablehttp must not be able to close the pool")
}

// The proxy settings of the environment are ignored. The step's host is a
// name that resolves (in this test, without DNS) to a loopback server:
// Go's ProxyFromEnvironment never proxies "localhost" or loopback IPs, so a
// URL with either would pass whatever the client did.
func TestNoProxyFromEnvironment(t *testing.T) {
	var proxied, direct atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, `{"output": "from the proxy"}`)
	}))
	defer proxy.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		direct.Add(1)
		_, _ = io.WriteString(w, `{"output": "direct"}`)
	}))
	defer srv.Close()
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	for _, k := range []string{"NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(k, "")
	}

	c, err := New(Config{Secrets: testSecrets(t), AllowHosts: []string{"127.0.0.0/8"}})
	require.NoError(t, err)
	defer c.Close()
	dialer := &net.Dialer{Timeout: time.Second}
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	c.transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "steps.test:"+port {
			addr = srv.Listener.Addr().String() // the test's DNS
		}
		return c.guard.dial(ctx, dialer, network, addr)
	}

	for _, url := range []string{"http://steps.test:" + port + "/", srv.URL} {
		r := c.Invoke(t.Context(), Request{URL: url, WebhookID: "msg_1", Body: []byte(`{}`)})
		require.Equal(t, Succeeded, r.Outcome, "%s: %s", url, r.Error)
		require.Equal(t, `"direct"`, string(r.Output))
	}
	require.EqualValues(t, 2, direct.Load())
	require.Zero(t, proxied.Load())
}
