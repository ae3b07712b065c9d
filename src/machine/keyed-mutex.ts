/** KeyedMutex moved to src/common (the image store locks blobs with it too). */
export { KeyedMutex } from '../common/index.ts';
