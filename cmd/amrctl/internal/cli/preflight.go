package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/preflight"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/importcheck"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// ErrChecksFailed is returned when a preflight check failed; it exits ExitFailed.
var ErrChecksFailed = errors.New("checks failed")

// goFlags are a service's own flags (package flag) offered on a command: the same code, names,
// defaults and AMR_* environment fallbacks as the service's, so a command checks or plans with
// what the service would use.
type goFlags struct{ fs *flag.FlagSet }

func addGoFlags(cmd *cobra.Command, register ...func(*flag.FlagSet)) *goFlags {
	g := &goFlags{fs: flag.NewFlagSet(cmd.Name(), flag.ContinueOnError)}
	for _, r := range register {
		r(g.fs)
	}
	cmd.Flags().AddGoFlagSet(g.fs)
	return g
}

// applyEnv sets the flags not given from the environment, as a service does (flagenv.Parse).
func (g *goFlags) applyEnv(cmd *cobra.Command) error {
	var given []string
	g.fs.VisitAll(func(fl *flag.Flag) {
		if cmd.Flags().Changed(fl.Name) {
			given = append(given, "-"+fl.Name+"="+fl.Value.String())
		}
	})
	if err := flagenv.Parse(g.fs, stage.EnvPrefix, given, os.LookupEnv); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// secrets returns the lookup of secrets, each possibly from its *_FILE, and the errors of
// unreadable files met so far.
func secrets() (func(string) (string, bool), func() error) {
	var fileErrs []error
	lookup := flagenv.WithFiles(os.LookupEnv, os.ReadFile, func(_ string, err error) { fileErrs = append(fileErrs, err) })
	return lookup, func() error { return errors.Join(fileErrs...) }
}

func preflightCommand(connect connectFunc) *cobra.Command {
	var site string
	cmd := &cobra.Command{
		Use:   "preflight --site URL [submitter flags]",
		Short: "Check credentials, permissions, storage, SAS rules, NATS, the KEK and clocks before a first export",
		Long: `Each check prints one line: its name, pass, warn or fail, what was found and how to fix it.
It takes the submitter's SharePoint and storage flags and AMR_* environment (AMR_SP_TOKEN,
AMR_SP_CERT_PASSWORD, AMR_STORAGE_KEY, AMR_KEK, each also from its *_FILE), so it checks what the
submitter would use. Exits 1 when a check failed. Nothing secret is printed.`,
	}
	cmd.Flags().StringVar(&site, "site", "", "a site collection the export reads (absolute URL)")
	var (
		sp      spo.Config
		st      storage.Config
		encrypt bool
	)
	gf := addGoFlags(cmd, sp.RegisterFlags, st.RegisterFlags, func(fs *flag.FlagSet) {
		fs.BoolVar(&encrypt, "encrypt", true, "the submitter encrypts manifests (its -encrypt): the key-encryption key "+keywrap.EnvKEK+" must be set")
	})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := gf.applyEnv(cmd); err != nil {
			return err
		}
		lookup, fileErrs := secrets()
		sp.LoadSecrets(lookup)
		st.LoadKey(lookup)
		kek, kekErr := keywrap.FromEnv(lookup)
		if err := fileErrs(); err != nil {
			return err
		}
		c := preflight.Config{Site: site, SharePoint: sp, Storage: st, Encrypt: encrypt, KEK: kek, KEKErr: kekErr}
		ctx := cmd.Context()
		nc, js, err := connect(ctx)
		if err != nil {
			c.ConnectErr = err
		} else {
			defer nc.Close()
			c.JS = js
		}
		results := preflight.Run(ctx, c)
		if err := render(cmd, results, func(w io.Writer) error { return printResults(w, results) }); err != nil {
			return err
		}
		if n := preflight.Failed(results); n > 0 {
			return fmt.Errorf("preflight: %d of %d %w", n, len(results), ErrChecksFailed)
		}
		return nil
	}
	cmd.AddCommand(preflightImportCommand())
	return cmd
}

func printResults(w io.Writer, rs []preflight.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Check, r.Status, r.Detail)
		if r.Fix != "" && r.Status != preflight.Pass {
			fmt.Fprintf(tw, "\t\tfix: %s\n", r.Fix)
		}
	}
	return tw.Flush()
}

func preflightImportCommand() *cobra.Command {
	var p importcheck.Package
	cmd := &cobra.Command{
		Use:   "import --content-sas URL --manifest-sas URL [--package-prefix P]",
		Short: "Check a prepared Migration API import package against Microsoft's content-preparation rules",
		Long: `One line per rule, pass or fail, naming the offending blob: SAS permissions (content Read+List
only, manifest Read+List+Write only), content and manifest in different containers, a snapshot on
every content blob, files up to 15 GB, package size advice, and the ArchivedFiles.xml rules
(at most two archives of 10 MB, encrypted, QuickXorHash as stated, archived files under 100 KB
after encryption and not compressed). Signatures are never printed. Exits 1 when a rule failed.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.ContentSAS == "" || p.ManifestSAS == "" {
				return usageErrorf("preflight import needs --content-sas and --manifest-sas")
			}
			fs, err := importcheck.Check(cmd.Context(), p, time.Now())
			if rerr := render(cmd, fs, func(w io.Writer) error { return printFindings(w, fs) }); rerr != nil {
				return rerr
			}
			if err != nil {
				return fmt.Errorf("preflight import: %w", sas.RedactError(err))
			}
			if n := importcheck.Failed(fs); n > 0 {
				return fmt.Errorf("preflight import: %d of %d %w", n, len(fs), ErrChecksFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&p.ContentSAS, "content-sas", "", "SAS URL of the content container (azureContainerSourceUri)")
	cmd.Flags().StringVar(&p.ManifestSAS, "manifest-sas", "", "SAS URL of the manifest container (azureContainerManifestUri)")
	cmd.Flags().StringVar(&p.Prefix, "package-prefix", "", "the package's blob prefix in both containers (default: the containers' roots)")
	return cmd
}

func printFindings(w io.Writer, fs []importcheck.Finding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSTATUS\tBLOB\tDETAIL")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Rule, f.Status, f.Blob, f.Detail)
	}
	return tw.Flush()
}
