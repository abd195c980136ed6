package svc

// Group runs actors until the first one returns, then interrupts all of them and waits for them
// to return (the oklog/run pattern). The zero Group is ready to use.
type Group struct {
	actors []actor
}

type actor struct {
	execute   func() error
	interrupt func(error)
}

// Add adds an actor: execute runs until it is done or interrupt (called with the error of the
// first actor to return) makes it return.
func (g *Group) Add(execute func() error, interrupt func(error)) {
	g.actors = append(g.actors, actor{execute, interrupt})
}

// Run runs every actor concurrently and returns the error of the first one to return, after all
// have returned. With no actors it returns nil at once.
func (g *Group) Run() error {
	if len(g.actors) == 0 {
		return nil
	}
	errs := make(chan error, len(g.actors))
	for _, a := range g.actors {
		go func() { errs <- a.execute() }()
	}
	err := <-errs
	for _, a := range g.actors {
		a.interrupt(err)
	}
	for range len(g.actors) - 1 {
		<-errs
	}
	return err
}
