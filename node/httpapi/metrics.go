package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "buytracker_http_requests_total", Help: "Client API requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "buytracker_http_request_duration_seconds", Help: "Client API latency by route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"route", "code"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (m *httpMetrics) instrument(route string, h http.HandlerFunc) http.Handler {
	byCode := &routeMetrics{route: route, m: m}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		c := byCode.forCode(rec.status)
		c.requests.Inc()
		c.duration.Observe(time.Since(start).Seconds())
	})
}

// routeMetrics keeps one route's series per status code, so that a request
// does not hash its labels twice to find them.
type routeMetrics struct {
	route  string
	m      *httpMetrics
	byCode sync.Map // int -> *codeMetrics
}

type codeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (r *routeMetrics) forCode(status int) *codeMetrics {
	if c, ok := r.byCode.Load(status); ok {
		return c.(*codeMetrics)
	}
	code := strconv.Itoa(status)
	c, _ := r.byCode.LoadOrStore(status, &codeMetrics{
		requests: r.m.requests.WithLabelValues(r.route, code),
		duration: r.m.duration.WithLabelValues(r.route, code),
	})
	return c.(*codeMetrics)
}
