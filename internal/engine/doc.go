// Package engine is the reference of how a run moves: given what a run
// knows (its definition, input, context, the outputs of its steps) and what
// happened (a step answered, a lane ended, an iteration ended, a step
// failed), it decides what follows, without a database, a network or a
// clock of its own.
//
// The orchestrator is the applier: it reads what a decision needs, asks
// the engine, and writes the decision in one transaction, fenced by the
// work item's lease. Every decision here has table tests that need no
// PostgreSQL (see the _test files); the orchestrator's tests check that
// the decisions are written faithfully, whatever crashes around them.
//
// Keys. A step execution's key is its step's name, qualified inside a
// foreach item or a loop iteration by that item or iteration:
// "ship[3].label", "poll[2].check". A lane's key is its block's key and the
// branch name or item index in brackets: "notify[email]", "ship[3]". Step
// and branch names are identifiers, so "." and "[" never occur in them. The
// steps of a parallel branch keep their plain names (each runs once per
// block), so expressions after the block still see them as steps.NAME; a
// foreach item's or a loop iteration's steps are seen as steps.NAME only
// inside that item or iteration.
package engine
