import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { transportContract } from '../support/transport-contract.ts';
import { requireKafkaBroker } from '../support/kafka.ts';

transportContract('kafka (real broker)', async () => new KafkaTransport({ brokers: await requireKafkaBroker(), clientId: 'lattice-contract-test' }));
