"""Numba functions inlined into a loop at no cost (``eventloop.py``): a compiler pipeline that
binds an inlined function's parameters to the caller's own arrays rather than to copies of them.

``@numba.njit(inline="always")`` inlines a function into its caller's Numba IR, but binds each
parameter to the argument by an assignment (``pi.1 = pi``): a copy of an array reference, which
Numba counts up and down at every call. In a loop that calls a step function at every event, with
twenty arrays a step, that doubled the loop's time; so did calls that are not inlined (each
counts its array arguments in and out) and arrays read out of a tuple. ``Pipeline`` adds one pass
after inlining (``ForwardArguments``) that removes those copies, so the loop compiles as if the
step functions were written inside it. Only a copy of a variable assigned once, from the
function's own arguments, is removed: replacing it by the argument changes nothing else.

A call with more than 30 arguments is compiled by CPython as a call with ``*args``, which Numba
cannot inline ("Calling a closure with *args is unsupported"): an inlined function takes at most
30 parameters.
"""

from __future__ import annotations

from numba.core import ir, ir_utils
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.untyped_passes import InlineInlinables

__all__ = ["ForwardArguments", "Pipeline"]


@register_pass(mutates_CFG=False, analysis_only=False)
class ForwardArguments(FunctionPass):
    """Replace every variable assigned once from a copy of one of the function's arguments (as
    an inlined function's parameters are) by that argument, and drop the copies."""

    _name = "flowsim_forward_arguments"

    def __init__(self) -> None:
        FunctionPass.__init__(self)

    def run_pass(self, state) -> bool:
        blocks = state.func_ir.blocks
        defs = ir_utils.build_definitions(blocks)

        def source(name: str) -> str:
            """The variable a chain of single copies starts from."""
            while len(defs[name]) == 1 and isinstance(defs[name][0], ir.Var):
                name = defs[name][0].name
            return name

        forward: dict[str, ir.Var] = {}
        for block in blocks.values():
            for stmt in block.body:
                if not (isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Var)):
                    continue
                if len(defs[stmt.target.name]) != 1:
                    continue
                name = source(stmt.value.name)
                if len(defs[name]) == 1 and isinstance(defs[name][0], ir.Arg):
                    forward[stmt.target.name] = ir.Var(stmt.value.scope, name, stmt.loc)
        if not forward:
            return False
        for block in blocks.values():
            block.body = [
                stmt
                for stmt in block.body
                if not (isinstance(stmt, ir.Assign) and stmt.target.name in forward)
            ]
        ir_utils.replace_vars(blocks, forward)
        state.func_ir._definitions = ir_utils.build_definitions(blocks)
        return True


class Pipeline(CompilerBase):
    """Numba's nopython pipeline with ``ForwardArguments`` after inlining: pass it to the
    function that inlines others, ``@numba.njit(pipeline_class=Pipeline)``."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(ForwardArguments, InlineInlinables)
        pm.finalize()
        return [pm]
