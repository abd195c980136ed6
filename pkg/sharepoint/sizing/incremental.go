package sizing

import (
	"context"
	"fmt"
	"log/slog"
)

// incremental gives one change-token job to each list whose stored token can be used, and
// returns the targets of the other lists for a full read.
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
		targets := byList[id]
		tok, reason := p.usableToken(req, id)
		var list Node
		if reason == "" {
			var err error
			if list, err = listNode(ctx, targets[0], sz); err != nil {
				return nil, nil, fmt.Errorf("plan %s: %w", req.PlanID, err)
			}
			if limit := p.cfg.IncrementalMaxItems; limit > 0 && (list.Items == UnknownItems || list.Items > limit) {
				reason = fmt.Sprintf("list has %d items, more than IncrementalMaxItems %d", list.Items, limit)
			}
		}
		if reason != "" {
			level := slog.LevelInfo
			if reason == noToken {
				level = slog.LevelDebug // a first pass
			}
			p.log.Log(ctx, level, "planner: full read instead of incremental",
				slog.String("plan_id", req.PlanID), slog.String("list_id", id), slog.String("reason", reason))
			full = append(full, targets...)
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
		}
		jobs = append(jobs, j)
	}
	return jobs, full, nil
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
	case t.IssuedAt.IsZero():
		return "", "change token has no issue time"
	}
	if age := p.cfg.Now().Sub(t.IssuedAt); age >= p.cfg.TokenMaxAge {
		return "", fmt.Sprintf("change token is %s old, the limit is %s", age.Round(1e9), p.cfg.TokenMaxAge)
	}
	return t.Token, ""
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
