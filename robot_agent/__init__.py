"""railbot's on-robot agent."""
