module github.com/amrpipe/amrpipe/cmd/amrctl

go 1.26.0

require (
	github.com/amrpipe/amrpipe/pkg v0.0.0
	github.com/amrpipe/amrpipe/proto v0.0.0
)

require (
	github.com/VividCortex/ewma v1.2.0 // indirect
	github.com/acarl005/stripansi v0.0.0-20180116102854-5a71ef0e047d // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/mattn/go-runewidth v0.0.16 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/vbauerster/mpb/v8 v8.10.2 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/term v0.47.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace (
	github.com/amrpipe/amrpipe/pkg => ../../pkg
	github.com/amrpipe/amrpipe/proto => ../../proto
)

require github.com/amrpipe/amrpipe/services/spsim v0.0.0

replace github.com/amrpipe/amrpipe/services/spsim => ../../services/spsim
