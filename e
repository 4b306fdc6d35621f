WARNING! Using --password via the CLI is insecure. Use --password-stdin.
password is empty
