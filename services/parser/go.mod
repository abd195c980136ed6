module github.com/amrpipe/amrpipe/services/parser

go 1.26.0

require (
	github.com/amrpipe/amrpipe/pkg v0.0.0
	github.com/amrpipe/amrpipe/proto v0.0.0
)

replace (
	github.com/amrpipe/amrpipe/pkg => ../../pkg
	github.com/amrpipe/amrpipe/proto => ../../proto
)
