module github.com/amrpipe/amrpipe/services/spsim

go 1.26.0
