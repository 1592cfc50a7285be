"""The Compose stack in real containers (see test_compose_stack.py)."""
