package stage

import (
	"flag"
	"fmt"
	"strings"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

// secretDocs says what each secret is.
func secretDocs() map[string]string {
	return map[string]string{
		svc.NATSPasswordEnv: "password of `-nats-user`",
		spo.TokenEnv:        "static bearer token (the simulator's); production uses the certificate",
		spo.CertPasswordEnv: "password of `-sp-cert-file`",
		storage.KeyEnv:      "storage account key",
		keywrap.EnvKEK:      "key-encryption key (32 bytes, base64) that wraps and unwraps the job keys",
		keywrap.EnvKEKID:    "names the key-encryption key (default: derived from it)",
	}
}

// FlagsMarkdown is the "Flags and environment" section of the stage's README: every flag with
// its environment variable, default and meaning, then the secrets. The READMEs hold it between
// markers, and a test keeps them equal to it (go test ./pkg/stage/registry -update rewrites them).
func (d Def) FlagsMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Every flag falls back to its environment variable (command line first, then environment, then default).\n\n")
	b.WriteString("| flag | environment | default | meaning |\n|---|---|---|---|\n")
	d.FlagSet(&Config{}, d.NewConfig()).VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `-%s` | `%s` | %s | %s |\n", f.Name, flagenv.EnvName(EnvPrefix, f.Name), mdCell(def), mdCell(f.Usage))
	})
	if s := d.Secrets(); len(s) > 0 {
		b.WriteString("\nSecrets, from the environment only (never flags, which show in `ps`); each may instead be read from the file its `_FILE` variable names (`AMR_KEK_FILE=/run/secrets/amr_kek`):\n\n| variable | meaning |\n|---|---|\n")
		docs := secretDocs()
		for _, name := range s {
			fmt.Fprintf(&b, "| `%s` | %s |\n", name, mdCell(docs[name]))
		}
	}
	return b.String()
}

// mdCell escapes what would break a Markdown table cell.
func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
