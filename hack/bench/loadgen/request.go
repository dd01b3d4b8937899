package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/buytracker/buytracker/node/rawhttp"
)

// Purchases spread over small id ranges, like a promotion's real traffic:
// many users, a few promotions, a catalogue of products.
const (
	buyUsers      = 10_000
	buyPromotions = 50
	buyProducts   = 500
	// Amounts from 1.00 to 999.99, always written with two decimals.
	buyMinCents = 100
	buyMaxCents = 99_999
)

// call is one request to make: its kind and, for a buy, its body.
type call struct {
	kind requestKind
	body []byte
}

// callMaker draws calls from a mix. It is not safe for concurrent use: each
// worker (or the open-loop dispatcher) owns one.
type callMaker struct {
	mix requestMix
	rng *rand.Rand
}

func newCallMaker(mix requestMix, seed uint64) *callMaker {
	return &callMaker{mix: mix, rng: rand.New(rand.NewPCG(seed, 0x6275797472616b))}
}

func (m *callMaker) next() call {
	c := call{kind: m.mix.pick(m.rng.Uint64())}
	if c.kind == kindBuy {
		// A fresh slice each time: the transport may still be reading the
		// last body when its answer arrives early.
		c.body = appendBuyBody(make([]byte, 0, 96), m.rng)
	}
	return c
}

// appendBuyBody writes a purchase like
// {"user_id":123,"promotion_id":7,"product_id":42,"product_amount":"19.99"}.
func appendBuyBody(dst []byte, rng *rand.Rand) []byte {
	cents := buyMinCents + rng.IntN(buyMaxCents-buyMinCents+1)
	dst = append(dst, `{"user_id":`...)
	dst = strconv.AppendInt(dst, 1+int64(rng.IntN(buyUsers)), 10)
	dst = append(dst, `,"promotion_id":`...)
	dst = strconv.AppendInt(dst, 1+int64(rng.IntN(buyPromotions)), 10)
	dst = append(dst, `,"product_id":`...)
	dst = strconv.AppendInt(dst, 1+int64(rng.IntN(buyProducts)), 10)
	dst = append(dst, `,"product_amount":"`...)
	dst = strconv.AppendInt(dst, int64(cents/100), 10)
	dst = append(dst, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	return append(dst, `"}`...)
}

// outcome is how one request ended.
type outcome struct {
	ok bool
	// errKey classifies a failure: the HTTP status code, or a transport
	// failure class; empty on success.
	errKey string
	// errText is a human-readable detail of a failure.
	errText string
}

// sender makes calls to the client API; it holds no per-call state and is
// shared by every worker. It uses raw when set, else client.
type sender struct {
	client     *http.Client
	raw        *rawhttp.Client
	statsQuery string
}

func newSender(cfg config) *sender {
	s := &sender{statsQuery: cfg.statsQuery}
	if cfg.client == "std" {
		s.client = newClient(cfg.conns, len(cfg.urls), cfg.timeout)
	} else {
		// The nodes never close a busy connection, so the idle check's
		// syscall per request is spared.
		s.raw = rawhttp.New(rawhttp.Options{MaxConns: cfg.conns, Timeout: cfg.timeout, TrustIdle: true})
	}
	return s
}

// close closes the idle connections.
func (s *sender) close() {
	if s.raw != nil {
		s.raw.CloseIdle()
	} else {
		s.client.CloseIdleConnections()
	}
}

// send makes c against baseURL and reads the whole answer so that the
// connection goes back to the pool. Success is 201 for a buy and 200 for
// the others.
func (s *sender) send(ctx context.Context, baseURL string, c call) outcome {
	if s.raw != nil {
		return s.sendRaw(ctx, baseURL, c)
	}
	var (
		req  *http.Request
		err  error
		want = http.StatusOK
	)
	switch c.kind {
	case kindBuy:
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/buy", bytes.NewReader(c.body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		want = http.StatusCreated
	case kindStats:
		url := baseURL + "/stats"
		if s.statsQuery != "" {
			url += "?" + s.statsQuery
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	default:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/health", nil)
	}
	if err != nil {
		return outcome{errKey: "request", errText: err.Error()}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return outcome{errKey: transportErrorKey(err), errText: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		// Keep the start of the error body: the node explains itself there.
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		_, _ = io.Copy(io.Discard, resp.Body)
		return outcome{errKey: strconv.Itoa(resp.StatusCode), errText: fmt.Sprintf("%s %s: %s", req.Method, req.URL.Path, bytes.TrimSpace(detail))}
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return outcome{errKey: transportErrorKey(err), errText: err.Error()}
	}
	return outcome{ok: true}
}

func (s *sender) sendRaw(ctx context.Context, baseURL string, c call) outcome {
	// Only the start of a failed answer is kept: the node explains itself
	// there.
	req := rawhttp.Request{BaseURL: baseURL, Method: http.MethodGet, Target: "/health", MaxBody: 256, DropBodyOf: http.StatusOK}
	switch c.kind {
	case kindBuy:
		req.Method, req.Target, req.DropBodyOf = http.MethodPost, "/buy", http.StatusCreated
		req.Header, req.Body = "Content-Type: application/json\r\n", c.body
	case kindStats:
		req.Target = "/stats"
		if s.statsQuery != "" {
			req.Target += "?" + s.statsQuery
		}
	}
	resp, err := s.raw.Do(ctx, &req)
	if err != nil {
		return outcome{errKey: transportErrorKey(err), errText: err.Error()}
	}
	if resp.Status != req.DropBodyOf {
		return outcome{errKey: strconv.Itoa(resp.Status), errText: fmt.Sprintf("%s %s: %s", req.Method, req.Target, bytes.TrimSpace(resp.Body))}
	}
	return outcome{ok: true}
}

// transportErrorKey classifies a failure that produced no HTTP answer.
func transportErrorKey(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "conn_reset"
	default:
		return "transport"
	}
}

// newClient pools keep-alive connections: up to conns per target, all of
// them kept idle between requests so that no request pays for a dial.
func newClient(conns, targets int, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		MaxIdleConns:        conns * targets,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: transport, Timeout: timeout}
}
