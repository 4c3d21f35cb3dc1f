"""Study toolkit for distributed SGD under stragglers and staleness.

Layers, lowest first; a module imports only from its own layer and those below it
(tests/test_layers.py): ``checks``, ``limits``, ``files``; ``schemes``; ``models``; ``cluster``
(the clock); ``theory`` (none of these imports torch); ``workloads``; ``replay``; ``runs``;
``distributed`` (the real backend on torch.distributed); ``compare``; ``plots``; ``sweeps``;
``notebook``; and the command line (``cli``, ``cli_args``, ``demo`` and each layer's ``cli``
module). README.md and docs/ARCHITECTURE.md describe the data flow; docs/theory.md the theory.
"""

__version__ = "0.1.0"
