#!/usr/bin/env node
// The CLI is written in TypeScript and run through tsx's loader, so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';

register();
// `lattice chaos list | head`: a reader that stops early is not an error; stop quietly, like
// other Unix tools, instead of dying on an unhandled EPIPE.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});
const { main } = await import('../app/cli.ts');
process.exitCode = await main(process.argv);
