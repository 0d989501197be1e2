// Declarations of the Arduino_BMI270_BMM150 library API (Nano 33 BLE Rev2 IMU) the
// generated sketches use, so that `tflmp firmware --check` compiles TFLMP_USE_IMU=2.
#pragma once
class BoschSensorClass {
 public:
  int begin();
  int readAcceleration(float& x, float& y, float& z);  // g
  int accelerationAvailable();
  int readGyroscope(float& x, float& y, float& z);  // degrees/s
  int gyroscopeAvailable();
};
extern BoschSensorClass IMU;
