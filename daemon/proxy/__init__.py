"""The local proxy: Anthropic, OpenAI and Gemini requests in, compressed requests out, streams relayed as-is."""
