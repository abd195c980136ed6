package dashboard

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// pingEvery is how often an idle event stream gets a comment line, so that a client gone away
// is noticed (the write fails) and proxies keep the connection.
const pingEvery = 15 * time.Second

// reconnectMillis is the delay the browser's EventSource waits before reconnecting.
const reconnectMillis = 2000

// events streams snapshots as server-sent events: one at once, then one after each change, at
// most one per Interval. A client slower than WriteTimeout to take one is dropped.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	select {
	case d.clients <- struct{}{}:
		defer func() { <-d.clients }()
	default:
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("the dashboard serves %d event streams at most; try again later", d.o.MaxClients), http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(parts ...[]byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(d.o.WriteTimeout)); err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	if send([]byte("retry: "+strconv.Itoa(reconnectMillis)+"\n\n")) != nil {
		return
	}
	var sent uint64
	first := true
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		version, changed := d.st.wait()
		if first || version != sent {
			data, v, err := d.st.snapshot(time.Now())
			if err != nil {
				d.log.Error("dashboard snapshot", "err", err)
				return
			}
			if err := send([]byte("event: snapshot\nid: "+strconv.FormatUint(v, 10)+"\ndata: "), data, []byte("\n\n")); err != nil {
				d.log.Info("dashboard client dropped", "remote", r.RemoteAddr, "err", err)
				return
			}
			sent, first = v, false
			// Coalesce: whatever changes meanwhile goes in the next event.
			select {
			case <-time.After(d.o.Interval):
			case <-r.Context().Done():
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-ping.C:
			if send([]byte(": ping\n\n")) != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}
