"""Development tooling (the local stack); lives outside chalicelib/ so it is never packaged."""
