// Package registry is the stage table: the five stages of the pipeline in pipeline order. The
// stage binaries each run their own row; `amrctl dev` runs every row, and the checks of the
// deployment files read their flags, secrets and consumers from here. Adding a stage is a package
// under pkg/stage, a row here and a three-line main.
package registry

import (
	"fmt"

	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/decryptor"
	"github.com/amrpipe/amrpipe/pkg/stage/parser"
	"github.com/amrpipe/amrpipe/pkg/stage/planner"
	"github.com/amrpipe/amrpipe/pkg/stage/relay"
	"github.com/amrpipe/amrpipe/pkg/stage/submitter"
)

// All returns the stages in pipeline order.
func All() []stage.Def {
	return []stage.Def{planner.Def(), submitter.Def(), relay.Def(), decryptor.Def(), parser.Def()}
}

// Lookup returns the stage of the given name.
func Lookup(name string) (stage.Def, error) {
	for _, d := range All() {
		if d.Name == name {
			return d, nil
		}
	}
	return stage.Def{}, fmt.Errorf("no stage %q", name)
}
