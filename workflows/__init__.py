"""End-to-end workflow tests of the demo back-office: the agent's knowledge base source."""
