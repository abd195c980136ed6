package spo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// getStatus is a cheap call used to provoke error answers.
func getStatus(c *spo.Client, site string) error {
	_, err := c.GetMigrationJobStatus(context.Background(), site, jobID)
	return err
}

func TestDocumentedCodes(t *testing.T) {
	tests := []struct {
		code     int64
		sentinel error
	}{
		{-2146232832, spo.ErrChangeTokenExpired},
		{-2147213196, spo.ErrOperationCanceled},
		{-2147213145, spo.ErrJobNotFound},
		{-2147213146, spo.ErrJobStatusExpired},
		{-2147024891, spo.ErrAccessDenied},
		{-2147024809, spo.ErrInvalidArgument},
	}
	all := []error{spo.ErrChangeTokenExpired, spo.ErrOperationCanceled, spo.ErrJobNotFound, spo.ErrJobStatusExpired,
		spo.ErrAccessDenied, spo.ErrInvalidArgument, spo.ErrThrottled, spo.ErrUnauthorized}
	for _, tt := range tests {
		for _, key := range []string{"error", "odata.error"} {
			t.Run(fmt.Sprintf("%d/%s", tt.code, key), func(t *testing.T) {
				body := fmt.Sprintf(`{%q:{"code":"%d, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"boom"}}}`, key, tt.code)
				sp := newFake(t, reply(500, body))
				err := getStatus(newClient(t, nil), sp.site())
				var e *spo.Error
				if !errors.As(err, &e) || e.Code != tt.code || e.Message != "boom" || e.Type != "Microsoft.SharePoint.SPException" {
					t.Fatalf("err = %#v", err)
				}
				for _, s := range all {
					if got, want := errors.Is(err, s), s == tt.sentinel; got != want {
						t.Errorf("errors.Is(%v) = %v, want %v", s, got, want)
					}
				}
				if e.Status != 500 || e.Throttled() {
					t.Errorf("status %d, throttled %v: a 500 must stay a 500 (never retried)", e.Status, e.Throttled())
				}
				if spo.Describe(tt.code) == "" {
					t.Errorf("code %d missing from the catalogue", tt.code)
				}
			})
		}
	}
}

func TestStatusSentinels(t *testing.T) {
	tests := []struct {
		status    int
		body      string
		throttled bool
		sentinel  error
	}{
		{500, `{"odata.error":{"code":"-1, System.Exception","message":{"lang":"en-US","value":"x"}}}`, false, nil},
		{401, `{"error_description":"Invalid JWT token. The token is expired."}`, false, spo.ErrUnauthorized},
		{401, `{"error":"invalid_token","error_description":"expired"}`, false, spo.ErrUnauthorized},
		{403, `{"odata.error":{"code":"-2147024891, System.UnauthorizedAccessException","message":{"lang":"en-US","value":"Access denied."}}}`, false, spo.ErrAccessDenied},
		{403, ``, false, spo.ErrAccessDenied},
		{404, `<html>not found</html>`, false, nil},
		{400, `{"error":{"code":"-1, Microsoft.SharePoint.Client.InvalidClientQueryException","message":"bad"}}`, false, nil},
		{429, ``, true, spo.ErrThrottled},
		{503, `<html>Service Unavailable</html>`, true, spo.ErrThrottled},
		{502, ``, false, nil},
		{504, ``, false, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %.20s", tt.status, tt.body), func(t *testing.T) {
			sp := newFake(t, reply(tt.status, tt.body))
			err := getStatus(newClient(t, nil), sp.site())
			var e *spo.Error
			if !errors.As(err, &e) || e.Status != tt.status {
				t.Fatalf("err = %v, want *spo.Error with status %d", err, tt.status)
			}
			if e.Throttled() != tt.throttled {
				t.Errorf("Throttled = %v, want %v", e.Throttled(), tt.throttled)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(err, %v) = false", tt.sentinel)
			}
			if strings.Contains(err.Error(), "<html>") {
				t.Errorf("non-JSON body leaked into %q", err)
			}
		})
	}
}

func TestThrottlingHeaders(t *testing.T) {
	date := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		status  int
		headers map[string]string
		want    time.Duration
		wantRL  spo.RateLimit
		capped  bool
	}{
		{name: "429 seconds", status: 429, headers: map[string]string{"Retry-After": "7"}, want: 7 * time.Second},
		{
			name: "503 HTTP date, measured from Date", status: 503,
			headers: map[string]string{"Date": date.Format(http.TimeFormat), "Retry-After": date.Add(2 * time.Minute).Format(http.TimeFormat)},
			want:    2 * time.Minute,
		},
		{
			name: "Retry-After wins over a larger RateLimit-Reset: the wait is what SharePoint asked for", status: 429,
			headers: map[string]string{"Retry-After": "5", "RateLimit-Limit": "1200", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
			want:    5 * time.Second, wantRL: spo.RateLimit{Present: true, Limit: 1200, Remaining: 0, Reset: 30 * time.Second},
		},
		{
			name: "no Retry-After: RateLimit-Reset", status: 429,
			headers: map[string]string{"RateLimit-Limit": "1200", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
			want:    30 * time.Second, wantRL: spo.RateLimit{Present: true, Limit: 1200, Remaining: 0, Reset: 30 * time.Second},
		},
		{name: "years of seconds are capped at an hour", status: 503, headers: map[string]string{"Retry-After": "9300000000"}, want: time.Hour, capped: true},
		{name: "more seconds than a Duration holds are capped, not wrapped", status: 503, headers: map[string]string{"Retry-After": "18446744074"}, want: time.Hour, capped: true},
		{name: "beyond uint64 is capped", status: 503, headers: map[string]string{"Retry-After": "99999999999999999999999"}, want: time.Hour, capped: true},
		{
			name: "an HTTP date in 2099 is capped", status: 503,
			headers: map[string]string{"Date": date.Format(http.TimeFormat), "Retry-After": time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)},
			want:    time.Hour, capped: true,
		},
		{name: "a date in the past is no wait", status: 503,
			headers: map[string]string{"Date": date.Format(http.TimeFormat), "Retry-After": date.Add(-time.Minute).Format(http.TimeFormat)}, want: 0},
		{name: "a negative number is not a wait", status: 429, headers: map[string]string{"Retry-After": "-5"}, want: 0},
		{
			name: "Retry-After larger", status: 429,
			headers: map[string]string{"Retry-After": "60", "RateLimit-Reset": "10"},
			want:    60 * time.Second, wantRL: spo.RateLimit{Present: true, Reset: 10 * time.Second},
		},
		{name: "no header", status: 429, want: 0},
		{name: "garbage header", status: 429, headers: map[string]string{"Retry-After": "soon", "RateLimit-Limit": "-3"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs []spo.Observation
			sp := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				for k, v := range tt.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
			})
			err := getStatus(newClient(t, func(o spo.Observation) { obs = append(obs, o) }), sp.site())
			var e *spo.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v", err)
			}
			if e.RetryAfter != tt.want || e.RateLimit != tt.wantRL {
				t.Errorf("RetryAfter=%v RateLimit=%+v, want %v %+v", e.RetryAfter, e.RateLimit, tt.want, tt.wantRL)
			}
			if !errors.Is(err, spo.ErrThrottled) || !e.Throttled() {
				t.Errorf("not classified as throttled: %v", err)
			}
			if len(obs) != 1 || obs[0].Status != tt.status || obs[0].RetryAfter != tt.want || obs[0].RetryAfterCapped != tt.capped ||
				obs[0].Method != "GetMigrationJobStatus" || obs[0].Host != "127.0.0.1" {
				t.Errorf("observations = %+v", obs)
			}
		})
	}
}

// TestObserverSeesRateLimitOnSuccess: the early warning arrives on 200s, before any 429.
func TestObserverSeesRateLimitOnSuccess(t *testing.T) {
	var obs []spo.Observation
	sp := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("RateLimit-Limit", "1200")
		w.Header().Set("RateLimit-Remaining", "120")
		w.Header().Set("RateLimit-Reset", "15")
		fmt.Fprint(w, `{"value":0}`)
	})
	if err := getStatus(newClient(t, func(o spo.Observation) { obs = append(obs, o) }), sp.site()); err != nil {
		t.Fatal(err)
	}
	want := spo.RateLimit{Present: true, Limit: 1200, Remaining: 120, Reset: 15 * time.Second}
	if len(obs) != 1 || obs[0].Status != 200 || obs[0].RateLimit != want || obs[0].RetryAfter != 0 || obs[0].Duration <= 0 {
		t.Errorf("observations = %+v, want one 200 with %+v and no RetryAfter", obs, want)
	}
}

func TestTransportAndContextErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		err = getStatus(newClient(t, nil), "http://"+addr+"/sites/hr")
		var te *spo.TransportError
		if !errors.As(err, &te) {
			t.Errorf("err = %v, want a TransportError", err)
		}
	})
	t.Run("connection dropped", func(t *testing.T) {
		sp := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		})
		err := getStatus(newClient(t, nil), sp.site())
		var te *spo.TransportError
		if !errors.As(err, &te) {
			t.Errorf("err = %v, want a TransportError", err)
		}
	})
	t.Run("caller cancelled", func(t *testing.T) {
		sp := newFake(t, reply(200, `{"value":0}`))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := newClient(t, nil).GetMigrationJobStatus(ctx, sp.site(), jobID)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v; want context.Canceled (a stopping service must not dead-letter)", err)
		}
	})
	t.Run("undecodable 200", func(t *testing.T) {
		sp := newFake(t, reply(200, `<html>login</html>`))
		err := getStatus(newClient(t, nil), sp.site())
		var (
			se *spo.Error
			te *spo.TransportError
		)
		if err == nil || errors.As(err, &se) || errors.As(err, &te) {
			t.Errorf("err = %v, want a decoding error (neither an HTTP error nor a transport one)", err)
		}
	})
}
