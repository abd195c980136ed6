package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageArgs makes every argument mistake a usage error (ExitUsage): it wraps each command's
// argument validator, gives commands that declare none cobra.NoArgs (they take flags only), and
// makes a group (a command that only holds commands) refuse an unknown subcommand instead of
// printing its help and succeeding, which is what cobra does. Call it once the tree is built.
func usageArgs(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		usageArgs(c)
	}
	cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which SuggestionsFor does not apply
	switch {
	case cmd.HasSubCommands() && !cmd.Runnable():
		cmd.Args = unknownSubcommand
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	case cmd.HasSubCommands() && cmd.Args == nil:
		cmd.Args = unknownSubcommand
	case cmd.Args == nil:
		cmd.Args = cobra.NoArgs
	}
	validate := cmd.Args
	cmd.Args = func(c *cobra.Command, args []string) error {
		if err := validate(c, args); err != nil {
			return &usageError{msg: err.Error()}
		}
		return nil
	}
}

// unknownSubcommand refuses arguments to a command that takes subcommands only, with cobra's
// suggestions.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageErrorf("%s", msg)
}
