/**
 * An error the user can act on: what went wrong, where (file, node, tensor, sample index) and
 * what to do about it. The CLI prints `message` and `hint` without a stack trace.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message}\n  → ${hint}` : message);
    this.name = 'UserError';
  }
}
