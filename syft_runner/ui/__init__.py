"""The owner's review console in a browser (`syft-runner ui`): the inbox and history, each job's
code, diff, datasets and environment, live logs, outputs with previews, and the approve, reject,
cancel and release buttons.

It is a second face of the CLI, not a second implementation: pages read the job folders as `show`
does and the buttons call the same `Job` methods. It listens on 127.0.0.1 and treats everything a
submitter or a job wrote as hostile (syft_runner.ui.security says how requests are admitted and
what the browser is forbidden to do).
"""
