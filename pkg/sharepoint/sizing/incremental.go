package sizing

import (
	"context"
	"fmt"
	"log/slog"
)

// incremental gives one change-token job to each list whose targets have usable stored tokens,
// and returns the other targets for a full read. A list root target needs the list's own token. A
// folder target takes the newer of its list's token and a token of its own (a previous pass read
// that folder only); the job over a list's folder targets starts from the oldest of their
// tokens, so it misses no change under any of them.
func (p *Planner) incremental(ctx context.Context, req Request, s scope, nodes []Node, sz Sizer) ([]JobSpec, []Node, error) {
	var order []string
	byList := make(map[string][]Node)
	for _, n := range nodes {
		if _, ok := byList[n.ListID]; !ok {
			order = append(order, n.ListID)
		}
		byList[n.ListID] = append(byList[n.ListID], n)
	}
	var jobs []JobSpec
	var full []Node
	for _, id := range order {
		tok, targets, rest, reason := p.listToken(req, id, byList[id])
		full = append(full, rest...)
		var list Node
		if len(targets) > 0 {
			var err error
			if list, err = listNode(ctx, targets[0], sz); err != nil {
				return nil, nil, fmt.Errorf("plan %s: %w", req.PlanID, err)
			}
			if limit := p.cfg.IncrementalMaxItems; limit > 0 && (list.Items == UnknownItems || list.Items > limit) {
				reason = fmt.Sprintf("list has %d items, more than IncrementalMaxItems %d", list.Items, limit)
				full, targets = append(full, targets...), nil
			}
		}
		if reason != "" {
			level := slog.LevelInfo
			if reason == noToken {
				level = slog.LevelDebug // a first pass
			}
			p.log.Log(ctx, level, "planner: full read instead of incremental",
				slog.String("plan_id", req.PlanID), slog.String("list_id", id), slog.String("reason", reason),
				slog.Int("targets_read_in_full", len(byList[id])-len(targets)))
		}
		if len(targets) == 0 {
			continue
		}
		j := s.contentJob([]Node{list})
		j.Options.StartChangeToken = tok
		if list.Items == UnknownItems {
			j.Items = -1
		}
		// After overlap reduction the list root, when it is a target, is its list's only target.
		if targets[0].Kind != KindList {
			for _, t := range targets {
				j.Scope = append(j.Scope, t.URL)
			}
			// The job delivers the changes under its scope only: its token is each folder's,
			// never the whole list's.
			j.ListTokens = scopedTokens(j.ListTokens, j.Scope)
		}
		jobs = append(jobs, j)
	}
	return jobs, full, nil
}

// listToken splits one list's targets into those an incremental job can read (with the token it
// starts from) and the rest, with why the rest are read in full.
func (p *Planner) listToken(req Request, listID string, targets []Node) (tok string, in, rest []Node, reason string) {
	listTok, reason := p.usableToken(req, listID)
	if targets[0].Kind == KindList || req.TokenRejected[listID] {
		if reason != "" {
			return "", nil, targets, reason
		}
		return listTok, targets, nil, ""
	}
	var oldest StoredToken
	for _, n := range targets {
		var best StoredToken
		if reason == "" {
			best = req.ChangeTokens[listID]
		}
		if t, ok := req.ScopeTokens[ScopeKey(n.URL)]; ok && p.tokenProblem(t) == "" && (best.Token == "" || t.IssuedAt.After(best.IssuedAt)) {
			best = t
		}
		if best.Token == "" {
			rest = append(rest, n)
			continue
		}
		in = append(in, n)
		if oldest.Token == "" || best.IssuedAt.Before(oldest.IssuedAt) {
			oldest = best
		}
	}
	switch {
	case len(rest) == 0:
		reason = ""
	case reason == "":
		reason = "folder targets without a token of their own or of their list"
	}
	return oldest.Token, in, rest, reason
}

// scopedTokens turns list-wide tokens into one token per scope URL.
func scopedTokens(tokens []ListToken, scope []string) []ListToken {
	var out []ListToken
	for _, t := range tokens {
		if t.Scope != "" {
			out = append(out, t)
			continue
		}
		for _, u := range scope {
			st := t
			st.Scope = u
			out = append(out, st)
		}
	}
	return out
}

const noToken = "no stored change token"

// usableToken returns the list's stored token, or why it cannot be used.
func (p *Planner) usableToken(req Request, listID string) (string, string) {
	t, ok := req.ChangeTokens[listID]
	switch {
	case !ok || t.Token == "":
		return "", noToken
	case req.TokenRejected[listID]:
		return "", "SharePoint rejected the change token"
	}
	if why := p.tokenProblem(t); why != "" {
		return "", why
	}
	return t.Token, ""
}

// tokenProblem says why a stored token cannot be used ("" when it can).
func (p *Planner) tokenProblem(t StoredToken) string {
	switch {
	case t.Token == "":
		return noToken
	case t.IssuedAt.IsZero():
		return "change token has no issue time"
	}
	if age := p.cfg.Now().Sub(t.IssuedAt); age >= p.cfg.TokenMaxAge {
		return fmt.Sprintf("change token is %s old, the limit is %s", age.Round(1e9), p.cfg.TokenMaxAge)
	}
	return ""
}

// listNode returns the root of n's list: n itself, or the list resolved through the Sizer.
func listNode(ctx context.Context, n Node, sz Sizer) (Node, error) {
	if n.Kind == KindList {
		return n, nil
	}
	l, err := sz.Resolve(ctx, n.ListURL)
	if err != nil {
		return Node{}, fmt.Errorf("size list %s: %w", n.ListURL, err)
	}
	if err := l.check(true); err != nil {
		return Node{}, fmt.Errorf("list of %s: %w", n.URL, err)
	}
	if l.Kind != KindList || l.ListID != n.ListID || !sameURL(l.WebURL, n.WebURL) {
		return Node{}, fmt.Errorf("list of %s: %s is not the root of list %s in web %s", n.URL, l.URL, n.ListID, n.WebURL)
	}
	return l, nil
}
