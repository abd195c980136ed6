package dashboard_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/amrpipe/amrpipe/pkg/dashboard"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// chromiumPath finds Debian's Chromium (`make setup` installs it). Without it the test is skipped,
// except in CI (CI=true), where it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "Chromium is not installed: run `make setup` (it runs apt-get install -y chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts headless Chromium, closed when the test ends; its context ends after 30 s.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // as root, in a container
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		// Nothing of Google's: the machine may have no network, and the page needs none.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTimeout := context.WithTimeout(allocCtx, 30*time.Second)
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("close Chromium: %v", err)
		}
		cancelBrowser()
		cancelTimeout()
		cancelAlloc()
	})
	return ctx
}

// TestPageInChromium loads the page in headless Chromium and watches it as an operator would: a
// job is listed with its progress, moves to done without a reload, and a dead letter appears
// with its reason (redacted).
func TestPageInChromium(t *testing.T) {
	ctx := browser(t)
	p := newPipeline(t)
	base := p.serve(dashboard.Options{PlanInterval: 200 * time.Millisecond})
	p.plan("plan-c", 100, "job-c1")
	p.progress("job-c1", 30, 100)

	row := `#jobs tr[data-job="job-c1"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(row+`[data-state="running"]`),
	); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	if pct := text(t, ctx, row+` .percent`); pct != "30.0 %" {
		t.Errorf("job-c1 shows %q, want 30.0 %%", pct)
	}
	link, err := chromedp.Run(ctx, chromedp.AttributeValue(`#plans tr[data-plan="plan-c"] a`, "href"))
	if err != nil || link.Value != "/plans/plan-c/report.html" {
		t.Errorf("plan-c's report link %q (%v)", link.Value, err)
	}
	// Survives only if the page is not reloaded.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}

	p.progress("job-c1", 100, 100)
	p.finish("job-c1", 100)
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(row+`[data-state="done"]`),
		chromedp.WaitVisible(`#plans tr[data-plan="plan-c"][data-state="complete"]`),
	); err != nil {
		t.Fatalf("job-c1 done: %v", err)
	}
	if pct := text(t, ctx, row+` .percent`); pct != "100 %" {
		t.Errorf("job-c1 done shows %q", pct)
	}
	if kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded === true`)); err != nil || !kept {
		t.Errorf("the page was reloaded (%v)", err)
	}

	const secret = "c2VjcmV0LXNpZ25hdHVyZQ"
	p.deadLetter(topology.StageDecryptor, "download https://acct.blob.core.windows.net/c/job-c1/Manifest.xml?sv=2024-08-04&sig="+secret+" failed: 403", "d1")
	dead := `#dead tr[data-stage="` + topology.StageDecryptor + `"]`
	if err := chromedp.Do(ctx, chromedp.WaitVisible(dead)); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	reason, total := text(t, ctx, dead+` td.reason`), text(t, ctx, `#dead-total`)
	if !strings.Contains(reason, "sig=REDACTED") || strings.Contains(reason, secret) || !strings.HasSuffix(reason, "failed: 403") || total != "1" {
		t.Errorf("dead letter shows %q (total %s)", reason, total)
	}
}

// text is the visible text of the first element sel matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}
