// Package workflow is the model of a workflow definition: parsing and
// complete validation of the JSON document a user posts, and the CEL
// expressions and mappings that carry data between steps. It knows nothing
// about storage or HTTP serving; the orchestrator executes what it describes.
//
// [Parse] turns a document into a [Definition]: a name, a tree of [Step]
// values and options. Each step has a [StepType] and the matching
// type-specific part ([CallStep], [BranchStep], [ParallelStep],
// [ForeachStep], [LoopStep], [SleepStep], [WaitForEventStep],
// [WaitForInputStep], [CallWorkflowStep]) with every default already
// applied. An invalid document is refused with a [*ValidationError] that
// lists every problem with the JSON Pointer of the value at fault.
// [Definition.Canonical] and [Definition.Hash] identify a document
// regardless of formatting and key order.
//
// Expressions are CEL, written as a JSON string that is exactly "${ expr }".
// Fields such as a branch's "on", a foreach's "items" or a loop's "while"
// must be expressions and become an [Expr]. Mappings such as a call's
// "input" become a [Template]: an expression string anywhere in them is
// replaced by the expression's typed value, every other value is literal,
// and "$${" writes a literal "${". Expressions have CEL's standard library,
// optional values and the math and base64 extensions. Every expression is
// compiled when the definition is parsed, including checks that the steps
// it names exist and that it uses item, index and iteration only inside a
// foreach or a loop; evaluation is bounded in cost, time and result size,
// honours its context, and reports failures as [*EvalError] values rather
// than panicking.
//
// Data crosses the package boundary as plain decoded JSON (see [DecodeJSON]
// and [Activation]): expressions see numbers whose value is an integer as
// ints, so input.user_id == 42 holds for 42 and 42.0 alike.
package workflow
