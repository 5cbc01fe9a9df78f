export { fitIsometric, isometricTrainingModel, representationLayer, ISOMETRIC_DEFAULTS, type IsometricOptions, type IsometricSources } from './fit';
export { denseTail, type DenseTail } from './tail';
