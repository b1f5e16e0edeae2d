import { InProcessTransport } from '../../collector/transport/in-process.ts';
import { transportContract } from '../support/transport-contract.ts';

transportContract('in-process', async () => new InProcessTransport({ retryBackoffMs: 10, batchMessagesMax: 64 }));
