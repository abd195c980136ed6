package dashboard

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/runreport"
)

// report builds a plan's run report (as `amrctl report` does) and serves its page. One report is
// built at a time: building reads every job's events.
func (d *Dashboard) report(w http.ResponseWriter, r *http.Request) {
	planID := r.PathValue("plan")
	select {
	case d.reports <- struct{}{}:
		defer func() { <-d.reports }()
	case <-r.Context().Done():
		return
	}
	rep, err := runreport.Build(r.Context(), d.client, planID)
	if errors.Is(err, client.ErrNotFound) {
		http.Error(w, "no plan "+planID, http.StatusNotFound)
		return
	}
	if err != nil {
		d.log.Error("dashboard run report", "plan", planID, "err", err)
		http.Error(w, "the run report could not be built; see the dashboard's log", http.StatusInternalServerError)
		return
	}
	var page bytes.Buffer
	if err := rep.Page().Write(&page); err != nil {
		d.log.Error("dashboard run report", "plan", planID, "err", err)
		http.Error(w, "the run report could not be rendered; see the dashboard's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if _, err := w.Write(page.Bytes()); err != nil {
		d.log.Info("dashboard run report not sent", "plan", planID, "err", err)
	}
}
